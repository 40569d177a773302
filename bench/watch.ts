// The cost of watching: ns per call of a small function plain, under an
// active watch, under a watch whose condition never matches, after reset,
// and through a naive decorator that JSON-serialises every call; observations
// per second to a JSON-lines pipe with the rate limit lifted; call-to-line latency.
import {
  cli,
  cliEnv,
  type Python,
  REPO,
  sleep,
  StreamingCli,
  Target,
} from "../tests/helpers/env.ts";

const CALLS = 200_000;
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

async function nsPerCall(t: Target, what = "time", n = CALLS): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) samples.push(Number(await t.ask(`${what} ${n}`)));
  return Math.min(...samples);
}

async function withWatch<T>(
  env: Record<string, string>,
  args: string[],
  body: (w: StreamingCli) => Promise<T>,
): Promise<T> {
  const w = new StreamingCli(["watch", "benchmod.small", ...args], env);
  await w.waitFor((l) => l.type === "event" || l.type === "error");
  try {
    return await body(w);
  } finally {
    w.kill("SIGINT");
    await w.done;
  }
}

export async function benchWatch(py: Python): Promise<string> {
  const t = await Target.start(py, "", { script: `${REPO}/tests/targets/bench_target.py` });
  const env = cliEnv();
  try {
    const plain = await nsPerCall(t);
    const naive = await nsPerCall(t, "naive");
    await cli(["attach", String(t.pid), "--json"], env);
    const watched = await withWatch(env, [], () => nsPerCall(t));
    const never = await withWatch(env, ["--condition", "params[0] < 0"], () => nsPerCall(t));
    const after = await nsPerCall(t);
    const { perSecond, dropped } = await withWatch(env, ["--rate", "0"], async (w) => {
      await nsPerCall(t, "burst", 100_000);
      await sleep(300);
      const obs = w.lines.filter((l) => l.type === "observation") as { timestamp: number }[];
      const span = obs.length > 1 ? obs[obs.length - 1].timestamp - obs[0].timestamp : 1;
      const drops = w.lines.filter((l) => l.event === "watch_dropped").pop() as {
        data?: Record<string, number>;
      } | undefined;
      return { perSecond: obs.length / Math.max(span, 1e-3), dropped: drops?.data ?? {} };
    });
    const latency = await withWatch(env, ["--rate", "0"], async (w) => {
      const arrivals: number[] = [];
      const seen = new Set<unknown>();
      const poll = setInterval(() => {
        for (const l of w.lines) {
          if (l.type === "observation" && !seen.has(l)) {
            seen.add(l);
            arrivals.push(Date.now() - Number((l.args as number[])[0]) * 1000);
          }
        }
      }, 1);
      await t.ask("stamp 300 3");
      await sleep(200);
      clearInterval(poll);
      return arrivals;
    });
    await cli(["detach", "--json"], env);
    const f = (n: number) => n.toFixed(0).padStart(6);
    return `${py.version.padEnd(6)} plain ${f(plain)}  watch +${
      f(watched - plain)
    }  never-matching +${f(never - plain)}` +
      `  after reset +${f(after - plain)}  naive +${f(naive - plain)} (x${
        ((naive - plain) / Math.max(1, watched - plain)).toFixed(1)
      } of watch)` +
      `  | ${perSecond.toFixed(0)} obs/s, dropped ${JSON.stringify(dropped)}` +
      `  | latency p50 ${pct(latency, 0.5)?.toFixed(1)} ms p99 ${
        pct(latency, 0.99)?.toFixed(1)
      } ms`;
  } finally {
    await t.stop();
  }
}
