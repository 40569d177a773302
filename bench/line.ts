// The cost of `peeka line`, ns added: per execution of the probed line (at its rate limit, and
// with a condition that never matches), per execution of the function's other lines while the
// probe is on, after the probe ended; next to a watch's ns per call on the same target.
import { cli, cliEnv, type Python, REPO, StreamingCli, Target } from "../tests/helpers/env.ts";

const N = 200_000;
const MODULE = Deno.readTextFileSync(`${REPO}/tests/targets/linebenchmod.py`).split("\n");
/** The line of `fn`'s body marked "# PROBED". */
const probed = (fn: string) => {
  const start = MODULE.findIndex((l) => l.startsWith(`def ${fn}(`));
  return start + 1 + MODULE.slice(start).findIndex((l) => l.includes("# PROBED"));
};

async function ns(t: Target, what: string): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) samples.push(Number(await t.ask(`${what} ${N}`)));
  return Math.min(...samples);
}

async function under<T>(env: Record<string, string>, args: string[], body: () => Promise<T>) {
  const c = new StreamingCli(args, env);
  await c.waitFor((l) => l.type === "event" || l.type === "error");
  try {
    return await body();
  } finally {
    c.kill("SIGINT");
    await c.done;
  }
}

export async function benchLine(py: Python): Promise<string> {
  const t = await Target.start(py, "", { script: `${REPO}/tests/targets/line_bench.py` });
  const env = cliEnv();
  try {
    const pid = ["--pid", String(t.pid)];
    const plain = {
      hits: await ns(t, "hits"),
      rest: await ns(t, "rest"),
      calls: await ns(t, "calls"),
    };
    await cli(["attach", String(t.pid), "--json"], env);
    const at = `linebenchmod.hits:${probed("hits")}`;
    const hit = await under(env, ["line", at, ...pid], () => ns(t, "hits"));
    const never = await under(
      env,
      ["line", at, "--condition", "x < 0", ...pid],
      () => ns(t, "hits"),
    );
    const rest = await under(
      env,
      ["line", `linebenchmod.rest:${probed("rest")}`, ...pid],
      () => ns(t, "rest"),
    );
    const after = await ns(t, "hits");
    const watched = await under(env, ["watch", "linebenchmod.tiny", ...pid], () => ns(t, "calls"));
    await cli(["detach", "--json", ...pid], env);
    const f = (n: number) => n.toFixed(0).padStart(5);
    return `${py.version.padEnd(6)} line: probed line +${
      f(hit - plain.hits)
    } ns/hit (rate-limited)` +
      `  never-matching condition +${f(never - plain.hits)}` +
      `  other lines +${f(rest - plain.rest)} ns/line  after +${f(after - plain.hits)}` +
      `  | watch +${f(watched - plain.calls)} ns/call  (plain line ${plain.hits.toFixed(0)} ns)`;
  } finally {
    await t.stop();
  }
}

if (import.meta.main) {
  const { pythons } = await import("../tests/helpers/env.ts");
  for (const py of pythons()) console.log(await benchLine(py));
}
