// The cost of watching a coroutine against a plain function: ns per call added by a watch of
// add_async(x, y) (awaited, returns at once) and of add(x, y), in the event loop of the asyncio
// target: at the default --rate (most calls skipped after the first thousand a second), with a
// condition that never matches (every call checked, none kept), and with every call observed
// (--rate 0: serialised and queued, the task's name read for each coroutine call). Best of 3.
// Also what a trace of an endpoint costs the loop's other tasks while the traced call is
// suspended in its sleep: ns per call of add() in another task, without and with the trace.
//   deno run -A bench/async.ts   (PEEKA_TEST_PYTHONS narrows the interpreters)
import {
  cli,
  cliEnv,
  type Python,
  pythons,
  REPO,
  StreamingCli,
  Target,
} from "../tests/helpers/env.ts";

const CALLS = 50_000;
const OBSERVED_CALLS = 5_000; // with every call observed: within the agent's queue (no drops)
const BESIDE_CALLS = 20_000; // well within the endpoint's 50 ms sleep, even 10x slower
type Kind = "plain" | "coroutine";
const FUNCTION: Record<Kind, string> = {
  plain: "async_shop.add",
  coroutine: "async_shop.add_async",
};

/** The best of 3 answers of the target to `request` (ns per call). */
async function best(t: Target, request: string): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) samples.push(Number(await t.ask(request)));
  return Math.min(...samples);
}

const nsPerCall = (t: Target, kind: Kind, n = CALLS) => best(t, `time ${kind} ${n}`);

/** body() while a watch or trace (`args`) runs. */
async function during<T>(env: Record<string, string>, args: string[], body: () => Promise<T>) {
  const w = new StreamingCli(args, env);
  await w.waitFor((l) => l.type === "event" || l.type === "error");
  try {
    return await body();
  } finally {
    w.kill("SIGINT");
    await w.done;
  }
}

const WAYS: [string, string[], number][] = [
  ["default rate", [], CALLS],
  ["never-matching", ["--condition", "x < 0"], CALLS],
  ["every call", ["--rate", "0"], OBSERVED_CALLS],
];

/** "120 -> 125 ns": another task's add() while an endpoint call sleeps, without and with a trace. */
async function besideTrace(env: Record<string, string>, t: Target): Promise<string> {
  const beside = () => best(t, `beside ${BESIDE_CALLS}`);
  const without = await beside();
  const traced = await during(env, ["trace", "async_shop.endpoint", "--rate", "0"], beside);
  return `${without.toFixed(0)} -> ${traced.toFixed(0)} ns`;
}

export async function benchAsync(py: Python): Promise<string> {
  const t = await Target.start(py, "", { script: `${REPO}/tests/targets/async_shop.py` });
  const env = cliEnv();
  try {
    const plain = {
      plain: await nsPerCall(t, "plain"),
      coroutine: await nsPerCall(t, "coroutine"),
    };
    await cli(["attach", String(t.pid), "--json"], env);
    const added = async (kind: Kind, way: string[], n: number) =>
      (await during(env, ["watch", FUNCTION[kind], ...way], () => nsPerCall(t, kind, n))) -
      plain[kind];
    const rows = [];
    for (const [label, way, n] of WAYS) {
      const [p, c] = [await added("plain", way, n), await added("coroutine", way, n)];
      rows.push(
        `${label} +${p.toFixed(0)} / +${c.toFixed(0)} (x${(c / Math.max(1, p)).toFixed(1)})`,
      );
    }
    const beside = await besideTrace(env, t);
    await cli(["detach", "--json"], env);
    return `${py.version.padEnd(6)} unwatched ${plain.plain.toFixed(0)} / ${
      plain.coroutine.toFixed(0)
    }  | ${rows.join("  | ")}  | beside a suspended traced call ${beside}`;
  } finally {
    await t.stop();
  }
}

export async function benchAsyncAll(): Promise<string> {
  const lines = [
    "\nwatch of a coroutine — ns per call, plain function / coroutine awaited in the loop, unwatched and" +
    `\nadded by a watch (best of 3 × ${CALLS} calls; every call observed: × ${OBSERVED_CALLS});` +
    "\nbeside a suspended traced call: another task's add() while a traced endpoint call sleeps:",
  ];
  for (const py of pythons()) lines.push(await benchAsync(py));
  return lines.join("\n");
}

if (import.meta.main) console.log(await benchAsyncAll());
