// deno task bench: prints the numbers peeka's targets are checked against.
//   - attach latency to a ready agent (median of 5) per interpreter and shape
//   - the CLI's start time for --help
//   - the agent's resident memory in the target
import { cli, cliEnv, DENO, pythons, REPO, Target } from "../tests/helpers/env.ts";

const RUNS = Number(Deno.env.get("PEEKA_BENCH_RUNS") ?? 5);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rssKiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
const fmt = (n: number) => n.toFixed(1).padStart(8);

async function helpStartMs(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 11; i++) {
    const t0 = performance.now();
    await new Deno.Command(DENO, {
      args: ["run", "-A", `${REPO}/mod.ts`, "--help"],
      cwd: REPO,
      stdout: "null",
    }).output();
    times.push(performance.now() - t0);
  }
  return median(times);
}

console.log(
  "peeka bench — attach latency: start of attach → agent answering (ms, median of %d)",
  RUNS,
);
console.log("python  shape   inject+ready   cli wall   route     agent RSS (KiB)");
for (const py of pythons()) {
  for (const shape of ["idle", "busy"]) {
    const t = await Target.start(py, shape);
    try {
      const env = cliEnv();
      const inner: number[] = [], wall: number[] = [];
      let route = "", rss = 0;
      const tasks = t.taskCount();
      for (let i = 0; i < RUNS; i++) {
        const before = rssKiB(t.pid);
        const a = await cli(["attach", String(t.pid), "--json"], env);
        if (a.code !== 0) throw new Error(`attach failed on ${py.version}/${shape}: ${a.stderr}`);
        const data = (a.lines[1] as { data: { elapsed_ms: number; route: string } }).data;
        inner.push(data.elapsed_ms);
        wall.push(a.ms);
        route = data.route;
        await cli(["thread", "--json"], env);
        rss = Math.max(rss, rssKiB(t.pid) - before);
        await cli(["detach", "--json"], env);
        // Let the agent's last threads exit, so the next attach sees the same process shape.
        while (t.taskCount() > tasks) await new Promise((r) => setTimeout(r, 10));
      }
      console.log(
        `${py.version.padEnd(7)} ${shape.padEnd(6)} ${fmt(median(inner))}      ${
          fmt(median(wall))
        }   ${route.padEnd(8)} ${String(rss).padStart(8)}`,
      );
    } finally {
      await t.stop();
    }
  }
}
console.log(`\nCLI start (--help, median of 11): ${(await helpStartMs()).toFixed(1)} ms`);
