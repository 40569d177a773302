// The cost of `memory --growth 1s` on heaps of about 10^5 and 10^6 tracked objects: how long the
// GIL was held in all and at most (as the agent measures its walks), the two walks, the whole
// command in the target, and the longest a 1 ms heartbeat thread in the target was kept waiting
// meanwhile (the pause the target itself saw). Run alone: deno run -A bench/memory.ts
import { cli, cliEnv, type Python, pythons, REPO, Target } from "../tests/helpers/env.ts";

const SIZES = [100_000, 1_000_000];
const num = (n: unknown, width = 7) => Number(n).toFixed(1).padStart(width);

async function growthCost(t: Target, env: Record<string, string>) {
  await t.ask("gap"); // forget the pauses of filling the heap
  const r = await cli(["memory", "--pid", String(t.pid), "--growth", "1s", "--json"], env);
  if (r.code !== 0) throw new Error(`memory --growth failed: ${r.stderr}`);
  const data = r.lines[0].data as Record<string, unknown>;
  const gap = Number((await t.ask("gap")).gap_ms);
  return { data, gap };
}

async function benchMemory(py: Python): Promise<string[]> {
  const t = await Target.start(py, "", { script: `${REPO}/tests/targets/growing.py` });
  const env = cliEnv();
  try {
    await cli(["attach", String(t.pid), "--json"], env);
    const rows: string[] = [];
    let filled = 0;
    for (const size of SIZES) {
      const got = await t.ask(`fill ${size - filled}`);
      filled = Number(got.filled);
      const { data, gap } = await growthCost(t, env);
      const walks = data.walk_ms as number[];
      rows.push(
        `${py.version.padEnd(7)} ${
          String((data.after as Record<string, number>).objects).padStart(9)
        }  ` +
          `${num(data.gil_ms)} ${num(data.gil_max_ms)}   ${num(walks[0])} ${num(walks[1])}  ` +
          `${num(Number(data.total_ms) - 1000)}   ${num(gap)}`,
      );
    }
    return rows;
  } finally {
    await cli(["detach", "--pid", String(t.pid), "--json"], env);
    await t.stop();
  }
}

export async function benchMemoryAll(): Promise<string> {
  const lines = [
    "memory --growth 1s over ~10^5 and ~10^6 tracked objects (ms): GIL held in all / at most, " +
    "the two walks,\nthe command's own time beyond the 1 s window, the longest wait of a 1 ms " +
    "heartbeat thread in the target",
    "python    objects   gil all gil max    walk 1  walk 2   beyond 1s  heartbeat",
  ];
  for (const py of pythons()) lines.push(...await benchMemory(py));
  return lines.join("\n");
}

if (import.meta.main) console.log(await benchMemoryAll());
