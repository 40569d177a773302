// deno task bench: prints the numbers peeka's targets are checked against.
//   - attach latency to a ready agent (median of 5) per interpreter and shape
//   - the CLI's start time for --help
//   - the agent's resident memory in the target
//   - round trips of a watch's first use on a fresh agent (loading its code included)
import { cli, cliEnv, DENO, type Python, pythons, REPO, Target } from "../tests/helpers/env.ts";
import { benchWatch } from "./watch.ts";
import { benchTrace } from "./trace.ts";
import { benchLine } from "./line.ts";
import { benchLook } from "./look.ts";
import { benchCondition } from "./condition.ts";
import { firstWatchRoundTrips } from "./first_watch.ts";

const RUNS = Number(Deno.env.get("PEEKA_BENCH_RUNS") ?? 5);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rssKiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
const fmt = (n: number) => n.toFixed(1).padStart(8);

async function helpStartMs(pluginPath = ""): Promise<number> {
  const config = Deno.makeTempDirSync(); // no user plugins in either measurement
  const times: number[] = [];
  for (let i = 0; i < 11; i++) {
    const t0 = performance.now();
    await new Deno.Command(DENO, {
      args: ["run", "-A", `${REPO}/mod.ts`, "--help"],
      cwd: REPO,
      stdout: "null",
      env: { XDG_CONFIG_HOME: config, PEEKA_PLUGIN_PATH: pluginPath },
    }).output();
    times.push(performance.now() - t0);
  }
  Deno.removeSync(config, { recursive: true });
  return median(times);
}

/** Attaches RUNS times (detaching in between); returns medians and the agent's RSS growth. */
async function measure(py: Python, shape: string, via: string[]) {
  const t = await Target.start(py, shape);
  try {
    const env = cliEnv();
    const inner: number[] = [], wall: number[] = [];
    const routes = new Set<string>();
    let rss = 0;
    const tasks = t.taskCount();
    for (let i = 0; i < RUNS; i++) {
      const before = rssKiB(t.pid);
      const a = await cli(["attach", String(t.pid), ...via, "--json"], env);
      const ok = a.lines.find((l) => l.type === "success") as
        | { data: Record<string, unknown> }
        | undefined;
      if (a.code !== 0 || !ok) {
        throw new Error(`attach failed on ${py.version}/${shape}: ${a.stderr}`);
      }
      inner.push(Number(ok.data.elapsed_ms));
      wall.push(a.ms);
      routes.add(`${ok.data.mechanism}${ok.data.route ? "/" + ok.data.route : ""}`);
      await cli(["thread", "--json"], env);
      rss = Math.max(rss, rssKiB(t.pid) - before);
      await cli(["detach", "--json"], env);
      // Let the agent's last threads exit, so the next attach sees the same process shape.
      while (t.taskCount() > tasks) await new Promise((r) => setTimeout(r, 10));
    }
    return { inner: median(inner), wall: median(wall), routes: [...routes].join(","), rss };
  } finally {
    await t.stop();
  }
}

console.log(
  `peeka bench — attach latency, start of attach → agent answering (ms, median of ${RUNS})`,
);
console.log(
  "python  shape   via       attach→ready   cli wall   mechanism/route      agent RSS (KiB)",
);
for (const py of pythons()) {
  const modern = Number(py.version.split(".")[1]) >= 14;
  const rows: [string, string[]][] = modern
    ? [
      ["idle", ["--via", "ptrace"]],
      ["busy", ["--via", "ptrace"]],
      ["busy", ["--via", "pep768"]],
      ["busy", []],
    ]
    : [["idle", []], ["busy", []]];
  for (const [shape, via] of rows) {
    const m = await measure(py, shape, via);
    console.log(
      `${py.version.padEnd(7)} ${shape.padEnd(6)}  ${(via[1] ?? "auto").padEnd(8)} ${
        fmt(m.inner)
      }      ${fmt(m.wall)}   ` +
        `${m.routes.padEnd(20)} ${String(m.rss).padStart(8)}`,
    );
  }
}
console.log(
  "\nwatch cost — ns per call of a 2-argument function, added to the plain cost (best of 3 × 200 000 calls);" +
    "\n'naive' is a decorator that JSON-serialises every call; throughput and latency with --rate 0:",
);
for (const py of pythons()) console.log(await benchWatch(py));
console.log(
  "\nwatch's first use on a fresh agent — requests (each one round trip) the CLI sends from" +
    "\nconnecting to the first observation, the snippet's and libraries' loading included:",
);
for (const py of pythons()) {
  console.log(`${py.version.padEnd(7)} ${await firstWatchRoundTrips(py)} round trips`);
}
console.log(
  "\ncondition cost — a never-matching condition through the engine's acceptor, the evaluator of" +
    "\nbefore the bounds (old) and now (new), interleaved, median of 9 × 100 000 calls:",
);
for (const py of pythons()) console.log(await benchCondition(py));
console.log(
  "\ntrace cost — hundred() makes 100 inner calls, every call traced (--rate 0); 'other thread' is the" +
    "\nCPU time per call of a small function in a thread running beside it (best of 5):",
);
for (const py of pythons()) console.log(await benchTrace(py));
console.log(
  "\nline cost — ns added per run of the probed line (rate-limited, and with a never-matching" +
    "\ncondition), per run of the function's other lines while it is probed, after; watch beside:",
);
for (const py of pythons()) console.log(await benchLine(py));
console.log(
  "\nlooking around — a busy loop's slowdown while top samples every 10 ms, stacks read from outside" +
    " (remote, the default) or by the agent; sc '*' (median of 5):",
);
for (const py of pythons()) console.log(await benchLook(py));
console.log(await (await import("./tasks.ts")).benchTasksAll());
console.log(await (await import("./async.ts")).benchAsyncAll());
console.log(await (await import("./processes.ts")).benchProcessesAll());
console.log(await (await import("./fork.ts")).benchForkAll());
console.log(await (await import("./top_rate.ts")).benchTopRateHeadline());
console.log(await (await import("./dump.ts")).benchDumpAll());
console.log(await (await import("./referrers.ts")).benchReferrersAll());
console.log(await (await import("./tt.ts")).benchTtAll());
console.log(await (await import("./memory.ts")).benchMemoryAll());

/** Ten copies of the example plugin (TypeScript: each one is read, stripped and imported). */
function tenPlugins(): string {
  const dir = Deno.makeTempDirSync();
  const source = Deno.readTextFileSync(`${REPO}/examples/plugins/env/command.ts`);
  for (let i = 0; i < 10; i++) {
    Deno.mkdirSync(`${dir}/env${i}`);
    Deno.writeTextFileSync(
      `${dir}/env${i}/command.ts`,
      source.replace('name: "env"', `name: "env${i}"`),
    );
    Deno.copyFileSync(`${REPO}/examples/plugins/env/snippet.py`, `${dir}/env${i}/snippet.py`);
  }
  return dir;
}
const plugins = tenPlugins();
console.log(
  `\nCLI start (--help, median of 11): ${(await helpStartMs()).toFixed(1)} ms; with ten plugins: ${
    (await helpStartMs(plugins)).toFixed(1)
  } ms`,
);
Deno.removeSync(plugins, { recursive: true });
