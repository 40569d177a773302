// The cost of looking around: the target's slowdown while `top` samples at 100 Hz
// (goal ≤ 2%), with the stacks read from outside (the default) and sampled by the agent (the
// fallback); and how long `sc '*'` takes on a process with 2 000 more classes.
import { cli, cliEnv, type Python, REPO, StreamingCli, Target } from "../tests/helpers/env.ts";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (r: number) => `${r >= 1 ? "+" : ""}${(100 * (r - 1)).toFixed(1)}%`;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One long run of the target's loop, cut in chunks of 10^6 calls, while top is started and
 * stopped every two seconds: the chunks run while top sampled against those run while it did
 * not, so the machine's drift (±5% between runs here) falls on both sides alike. Chunks
 * within 300 ms of a start or stop (the CLI starting or ending) are left out. The loop
 * allocates nothing: a loop that allocates an int per call swings by up to ±15% on 3.12 with
 * where pymalloc's free blocks happen to lie, which any agent activity (attach alone)
 * reshuffles; that is not the cost of sampling. */
async function topCost(t: Target, env: Record<string, string>, sampler: string) {
  const calls = 1_000_000, seconds = 18;
  const run = t.ask(`chunks ${calls} ${seconds}`) as unknown as Promise<[number, number][]>;
  const windows: { from: number; to: number; on: boolean }[] = [];
  const began = Date.now();
  const stopped: Record<string, number>[] = [];
  let mark = began;
  while (Date.now() - began < (seconds - 2.5) * 1000) {
    await pause(2000);
    windows.push({ from: mark + 300, to: Date.now(), on: false });
    const top = new StreamingCli(["top", "-i", "10ms", "--sampler", sampler, "--json"], env);
    await top.waitFor((l) => l.event === "top_started" || l.type === "error");
    const from = Date.now() + 300;
    await pause(2000);
    windows.push({ from, to: Date.now(), on: true });
    top.kill("SIGINT");
    await top.done;
    mark = Date.now();
    const end = top.lines.find((l) => l.event === "top_stopped") as {
      data: Record<string, number>;
    };
    stopped.push(end.data);
  }
  windows.push({ from: mark + 300, to: began + seconds * 1000, on: false });
  const on: number[] = [], off: number[] = [];
  for (const [end, ns] of await run) {
    const to = end * 1000, from = to - ns * calls / 1e6;
    const w = windows.find((w) => w.from <= from && to <= w.to);
    if (w) (w.on ? on : off).push(ns);
  }
  const per = (field: string) =>
    1000 * stopped.reduce((a, s) => a + (s[field] ?? 0), 0) /
    Math.max(1, stopped.reduce((a, s) => a + s.samples, 0));
  return {
    slowdown: pct(median(on) / median(off)),
    chunks: `${on.length}/${off.length}`,
    gilUs: per("sampling_cpu_ms").toFixed(0), // the target's CPU for sampling, per sample
    readerUs: per("reader_ms").toFixed(0), // the CLI's reading, per sample (remote)
  };
}

export async function benchLook(py: Python): Promise<string> {
  const t = await Target.start(py, "", { script: `${REPO}/tests/targets/bench_target.py` });
  const env = cliEnv();
  try {
    await cli(["attach", String(t.pid), "--json"], env);
    const remote = await topCost(t, env, "remote");
    const agent = await topCost(t, env, "agent");
    await t.ask("classes 2000");
    const walls: number[] = [], inAgent: number[] = [];
    let count = 0;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const r = await cli(["sc", "*", "--limit", "10000", "--json"], env);
      walls.push(performance.now() - t0);
      const data = r.lines[0].data as Record<string, number>;
      inAgent.push(data.elapsed_ms);
      count = data.total;
    }
    await cli(["detach", "--json"], env);
    return `${py.version.padEnd(6)} top at 100 Hz: remote ${remote.slowdown} ` +
      `(${remote.readerUs} µs of CLI reading per sample), agent ${agent.slowdown} ` +
      `(${agent.gilUs} µs of GIL per sample); chunks sampled/not ${remote.chunks}, ${agent.chunks}` +
      `  | sc '*' over ${count} classes: ${median(inAgent).toFixed(1)} ms in the agent, ${
        median(walls).toFixed(0)
      } ms for the whole command`;
  } finally {
    await t.stop();
  }
}
