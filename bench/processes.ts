// Many processes as one (issue 21): how long `attach --children` takes until every worker's
// agent answers, for pools of 1, 4 and 16 forked workers; and how many observations per second
// one merged watch over 4 busy workers delivers, against one over a single worker.
import {
  cli,
  cliEnv,
  type Python,
  pythons,
  REPO,
  StreamingCli,
  Target,
} from "../tests/helpers/env.ts";
import { childrenOf, killPid } from "../tests/helpers/family.ts";

const POOL = `${REPO}/tests/targets/pool.py`;
const RUNS = 3;
const WATCH_SECONDS = 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A pool of `workers` (":busy": calling without pause); its workers are killed with it. */
async function withPool<T>(py: Python, spec: string, work: (t: Target) => Promise<T>) {
  const t = await Target.start(py, spec, { script: POOL });
  const workers = childrenOf(t.pid);
  try {
    return await work(t);
  } finally {
    workers.forEach(killPid);
    await t.stop();
  }
}

/** Wall time of `attach --children` until every agent answered (median of RUNS). */
async function attachAll(py: Python, workers: number): Promise<number> {
  return await withPool(py, String(workers), async (t) => {
    const env = cliEnv();
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const a = await cli(["attach", "--children", String(t.pid), "--json"], env);
      const ok = a.lines.filter((l) => l.type === "success").length;
      if (a.code !== 0 || ok !== workers) throw new Error(`attach: ${ok}/${workers} ${a.stderr}`);
      times.push(a.ms);
      await cli(["detach", "--children", String(t.pid), "--json"], env);
    }
    return median(times);
  });
}

/** Observations per second one watch (no rate limit) delivers over the pool's workers. */
async function watchRate(py: Python, workers: number): Promise<number> {
  return await withPool(py, `${workers}:busy`, async (t) => {
    const env = cliEnv();
    await cli(["attach", "--children", String(t.pid), "--json"], env);
    const w = new StreamingCli(
      ["watch", "__main__.work", "--children", String(t.pid), "--rate", "0", "-x", "0"],
      env,
    );
    try {
      const started = () => w.lines.filter((l) => l.event === "watch_started").length;
      while (started() < workers) await pause(20);
      const from = w.observations().length;
      await pause(WATCH_SECONDS * 1000);
      return (w.observations().length - from) / WATCH_SECONDS;
    } finally {
      w.kill("SIGINT");
      await w.done;
      await cli(["detach", "--children", String(t.pid), "--json"], env);
    }
  });
}

export async function benchProcesses(py: Python): Promise<string> {
  const attach = [];
  for (const n of [1, 4, 16]) attach.push(`${n}: ${(await attachAll(py, n)).toFixed(0)} ms`);
  const one = await watchRate(py, 1);
  const four = await watchRate(py, 4);
  return `${py.version.padEnd(7)} attach --children (wall, every agent answering) ${
    attach.join(", ")
  }; merged watch ${four.toFixed(0)}/s over 4 workers vs ${one.toFixed(0)}/s over 1 (×${
    (four / one).toFixed(2)
  })`;
}

export async function benchProcessesAll(): Promise<string> {
  const lines = [
    "\nmany processes as one — a fork pool's workers: attach --children to 1, 4 and 16 (median of " +
    `${RUNS}); one watch (--rate 0) over 4 busy workers vs 1 (observations/s over ${WATCH_SECONDS} s):`,
  ];
  for (const py of pythons()) lines.push(await benchProcesses(py));
  return lines.join("\n");
}

if (import.meta.main) console.log(await benchProcessesAll());
