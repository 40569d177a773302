// The cost of `peeka tasks` on a loop with many pending tasks: the GIL time the agent took
// (all of it, and its longest stretch between two releases) and the whole call, in the agent
// and as the CLI saw it, for 100, 1 000 and 10 000 tasks (median of 3).
//   deno run -A bench/tasks.ts   (PEEKA_TEST_PYTHONS narrows the interpreters)
import { cli, cliEnv, type Python, pythons, REPO, Target } from "../tests/helpers/env.ts";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure(pid: number, env: Record<string, string>) {
  const gil: number[] = [], longest: number[] = [], total: number[] = [], wall: number[] = [];
  let count = 0;
  for (let i = 0; i < 3; i++) {
    const r = await cli(["tasks", "--pid", String(pid), "--json", "-x", "5"], env);
    if (r.code !== 0) throw new Error(r.stderr);
    const s = r.lines[r.lines.length - 1].data as Record<string, number>;
    gil.push(s.gil_ms);
    longest.push(s.gil_max_ms);
    total.push(s.total_ms);
    wall.push(r.ms);
    count = s.count;
  }
  return {
    count,
    gil: median(gil),
    longest: median(longest),
    total: median(total),
    wall: median(wall),
  };
}

export async function benchTasks(py: Python): Promise<string> {
  const t = await Target.start(py, "", { script: `${REPO}/tests/targets/asyncio_target.py` });
  const env = cliEnv();
  const rows: string[] = [];
  try {
    await cli(["attach", String(t.pid), "--json"], env);
    let made = 0;
    for (const n of [100, 1000, 10000]) {
      await t.ask(`many ${n - made}`);
      made = n;
      const m = await measure(t.pid, env);
      rows.push(
        `${py.version.padEnd(6)} ${String(n).padStart(6)} idle tasks (${m.count} listed): GIL ${
          m.gil.toFixed(1)
        } ms in all, longest hold ${m.longest.toFixed(1)} ms; ${
          m.total.toFixed(1)
        } ms in the agent, ${m.wall.toFixed(0)} ms for the CLI`,
      );
    }
    await cli(["detach", "--pid", String(t.pid), "--json"], env);
  } finally {
    await t.stop();
  }
  return rows.join("\n");
}

/** The whole table, with its title (bench/run.ts prints it). */
export async function benchTasksAll(): Promise<string> {
  const out = [
    "\ntasks cost — GIL held by the agent and time of `tasks` on a loop with N idle tasks:",
  ];
  for (const py of pythons()) out.push(await benchTasks(py));
  return out.join("\n");
}

if (import.meta.main) console.log(await benchTasksAll());
