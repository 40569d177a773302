// The cost of tt (time tunnel): ns added per call of a 2-argument function while tt records
// it, next to watch on the same function (at the default rate limit, and with --rate 0: every
// call recorded or observed); then the agent's memory for 100 and for 10 000 records (the
// target's RSS growth, and the bytes tt counts against --max-bytes).
import {
  cli,
  cliEnv,
  type Python,
  pythons,
  REPO,
  StreamingCli,
  Target,
} from "../tests/helpers/env.ts";

const CALLS = 200_000;
const TARGET = `${REPO}/tests/targets/tt_target.py`;
const rssKiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);

async function nsPerCall(t: Target, n = CALLS): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) samples.push(Number(await t.ask(`steady ${n}`)));
  return Math.min(...samples);
}

/** Runs `body` while `args` (a watch or tt) streams; returns its value and the stream's lines. */
async function during<T>(env: Record<string, string>, args: string[], body: () => Promise<T>) {
  const c = new StreamingCli(args, env);
  await c.waitFor((l) => l.type === "event" || l.type === "error");
  try {
    return { value: await body(), lines: c.lines };
  } finally {
    c.kill("SIGINT");
    await c.done;
  }
}

/** The ns added per call under each command line, against the plain cost. */
async function callCosts(t: Target, env: Record<string, string>, plain: number) {
  const added = async (args: string[], n = CALLS) =>
    (await during(env, args, () => nsPerCall(t, n))).value - plain;
  return {
    watch: await added(["watch", "ttmod.small"]),
    tt: await added(["tt", "ttmod.small"]),
    // every call observed or recorded, and streamed to the CLI: fewer calls, each costs µs
    watchAll: await added(["watch", "ttmod.small", "--rate", "0"], CALLS / 10),
    ttAll: await added(["tt", "ttmod.small", "--rate", "0", "--max-records", "100"], CALLS / 10),
  };
}

/** RSS growth (KiB) and the bytes tt counts for `n` records of small(1, 2). */
async function memoryFor(t: Target, env: Record<string, string>, n: number) {
  await cli(["tt", "--clear", "--pid", String(t.pid), "--json"], env);
  const before = rssKiB(t.pid);
  const args = ["tt", "ttmod.small", "--rate", "0", "-n", String(n), "--max-records", String(n)];
  const c = new StreamingCli([...args, "--max-bytes", "1g"], env);
  await c.waitFor((l) => l.type === "event" || l.type === "error");
  await t.ask(`steady ${n}`);
  await c.done;
  const stopped = c.lines.find((l) => l.event === "tt_stopped") as {
    data: { records: number; bytes: number };
  };
  return { rss: rssKiB(t.pid) - before, ...stopped.data };
}

export async function benchTt(py: Python): Promise<string> {
  const t = await Target.start(py, "", { script: TARGET });
  const env = cliEnv();
  try {
    const plain = await nsPerCall(t);
    await cli(["attach", String(t.pid), "--json"], env);
    const c = await callCosts(t, env, plain);
    const small = await memoryFor(t, env, 100);
    const large = await memoryFor(t, env, 10_000);
    await cli(["detach", "--pid", String(t.pid), "--json"], env);
    const f = (n: number) => n.toFixed(0).padStart(6);
    const mem = (m: { rss: number; records: number; bytes: number }) =>
      `${m.records} records: RSS +${m.rss} KiB, counted ${(m.bytes / 1024).toFixed(0)} KiB ` +
      `(${(m.bytes / Math.max(m.records, 1)).toFixed(0)} B each)`;
    return `${py.version.padEnd(6)} plain ${f(plain)}  at the rate limit: watch +${f(c.watch)} ` +
      `tt +${f(c.tt)}  | every call (--rate 0, streamed): watch +${f(c.watchAll)} tt +${
        f(c.ttAll)
      }` +
      `  | ${mem(small)}; ${mem(large)}`;
  } finally {
    await t.stop();
  }
}

export async function benchTtAll(): Promise<string> {
  const out = [
    "\ntt cost — ns per call of small(1, 2) added to the plain cost (best of 3 × 200 000 calls)," +
    "\nwatch and tt on the same function; memory of 100 and 10 000 recorded calls:",
  ];
  for (const py of pythons()) out.push(await benchTt(py));
  return out.join("\n");
}

if (import.meta.main) console.log(await benchTtAll());
