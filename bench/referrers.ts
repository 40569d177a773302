// The cost of `inspect --referrers` on heaps of 10^5 and 10^6 tracked objects (tests/targets/
// leaky.py plus that many small lists): the agent's time and how long it held the GIL (in all
// and at most between two releases, as it measures it), and the longest wait of a target thread
// that ticks every millisecond meanwhile (what the target's threads feel).
import { cli, cliEnv, type Python, pythons, REPO, Target } from "../tests/helpers/env.ts";

const LEAKY = `${REPO}/tests/targets/leaky.py`;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

const CASES: [string, string[]][] = [
  ["module global", ["leaky._cache['session-7'][1]", "--limit", "1"]],
  ["thread local ×3", ["--type", "leaky.Job", "--limit", "1"]],
];

async function benchHeap(py: Python, objects: number): Promise<string[]> {
  const t = await Target.start(py, "", { script: LEAKY });
  const env = cliEnv();
  const pid = String(t.pid);
  const rows: string[] = [];
  try {
    await t.ask(`heap ${objects}`);
    const tracked = Number((await t.ask("report")).objects);
    await cli(["attach", pid, "--json"], env);
    await t.ask("gap"); // starts the ticker
    await pause(300);
    const idle = Number(await t.ask("gap")); // its longest wait with nothing of ours running
    for (const [name, args] of CASES) {
      await t.ask("gap");
      const r = await cli(["inspect", "--referrers", ...args, "--pid", pid, "--json"], env);
      const stall = Number(await t.ask("gap"));
      const data = r.lines[0].data as Record<string, unknown>;
      const cost = data.cost as Record<string, number>;
      rows.push(
        `${py.version.padEnd(6)} ${(tracked / 1e6).toFixed(2).padStart(5)}M  ${name.padEnd(16)} ` +
          `${String(cost.passes).padStart(3)} passes  total ${
            cost.total_ms.toFixed(0).padStart(6)
          } ms  ` +
          `GIL ${cost.gil_ms.toFixed(0).padStart(6)} ms, at most ${
            cost.gil_max_ms.toFixed(1).padStart(5)
          } ms  ` +
          `target thread waited at most ${stall.toFixed(1).padStart(5)} ms (idle ${
            idle.toFixed(1)
          })  CLI ${r.ms.toFixed(0)} ms`,
      );
    }
    await cli(["detach", "--pid", pid, "--json"], env);
  } finally {
    await t.stop();
  }
  return rows;
}

/** The whole table, with its title (bench/run.ts prints it). */
export async function benchReferrersAll(): Promise<string> {
  const out = [
    "\ninspect --referrers cost — the walk's passes, time and GIL held (agent's measure), and the" +
    "\nlongest wait of a target thread ticking every 1 ms, on heaps of ~10^5 and ~10^6 objects:",
  ];
  for (const py of pythons()) {
    for (const objects of [100_000, 1_000_000]) out.push(...await benchHeap(py, objects));
  }
  return out.join("\n");
}

if (import.meta.main) console.log(await benchReferrersAll());
