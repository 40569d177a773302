// The cost of trace: the traced function's own slowdown (a call with 100 inner
// calls, every call traced) and the slowdown of another thread running at the
// same time (its CPU time per call of a small function; goal ≤ 2%).
import { cli, cliEnv, type Python, REPO, StreamingCli, Target } from "../tests/helpers/env.ts";

const best = async (t: Target, what: string, runs = 5) => {
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) xs.push(Number(await t.ask(what)));
  return Math.min(...xs);
};

const pct = (x: number, base: number) =>
  `${x >= base ? "+" : ""}${(100 * (x / base - 1)).toFixed(1)}%`;

export async function benchTrace(py: Python): Promise<string> {
  const t = await Target.start(py, "", { script: `${REPO}/tests/targets/bench_target.py` });
  const env = cliEnv();
  try {
    const plain = await best(t, "tree 2000");
    const otherPlain = await best(t, "contend 300000");
    await cli(["attach", String(t.pid), "--json"], env);
    const during = async <T>(rate: string, body: () => Promise<T>) => {
      const w = new StreamingCli(["trace", "benchmod.hundred", "--rate", rate, "--json"], env);
      await w.waitFor((l) => l.event === "trace_started" || l.type === "error");
      try {
        return [await body(), w.observations().length] as const;
      } finally {
        w.kill("SIGINT");
        await w.done;
      }
    };
    const [traced, trees] = await during("0", () => best(t, "tree 2000"));
    // The other thread's cost drifts on a busy 2-core machine: measure without and with a
    // trace in turn, five times, and take the median of the ratios.
    const beside = async (rate: string) => {
      const ratios: number[] = [];
      for (let i = 0; i < 5; i++) {
        const without = await best(t, "contend 300000", 3);
        const [withTrace] = await during(rate, () => best(t, "contend 300000", 3));
        ratios.push(withTrace / without);
      }
      return ratios.sort((a, b) => a - b)[2];
    };
    const everyCall = await beside("0");
    const atDefault = await beside("50");
    await cli(["detach", "--json"], env);
    return `${py.version.padEnd(6)} hundred() plain ${(plain / 1000).toFixed(1)} µs, traced ${
      (traced / 1000).toFixed(1)
    } µs (x${(traced / plain).toFixed(1)}, ${trees} trees)  | other thread (${
      otherPlain.toFixed(0)
    } ns/call): ${pct(everyCall, 1)} with every call traced, ${
      pct(atDefault, 1)
    } at the default --rate 50`;
  } finally {
    await t.stop();
  }
}
