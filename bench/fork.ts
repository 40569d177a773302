// fork() in an attached process (issue 21): the time of os.fork() + waitpid() (the child exits at
// once) in the forker target, not attached, attached, attached with a watch running, and after
// detach (the at-fork hook stays registered, with no agent to find), as ratios to not attached.
// The hook runs in the child: what the parent waits for is the child's exit after it.
import type { Python } from "../tests/helpers/env.ts";
import { cli, cliEnv, pythons, REPO, StreamingCli, Target } from "../tests/helpers/env.ts";

const FORKER = `${REPO}/tests/targets/forker.py`;
const FORKS = 200;
const RUNS = 5;

type Fork = { wait: number; start: number; hook: number };

/** Best of RUNS (the machine is shared) of: the mean fork + waitpid over FORKS, and the medians of
 * fork → the child's first line and of peeka's at-fork hook in the child (µs). */
async function forkUs(t: Target): Promise<Fork> {
  const runs = { wait: [] as number[], start: [] as number[], hook: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    const r = await t.ask(`forks ${FORKS}`);
    runs.wait.push(Number(r.fork_ns) / 1000);
    runs.start.push(Number(r.child_start_ns) / 1000);
    runs.hook.push(Number(r.hook_ns) / 1000);
  }
  return {
    wait: Math.min(...runs.wait),
    start: Math.min(...runs.start),
    hook: Math.min(...runs.hook),
  };
}

export async function benchFork(py: Python): Promise<string> {
  const t = await Target.start(py, "", { script: FORKER });
  const env = cliEnv();
  const pid = String(t.pid);
  try {
    const plain = await forkUs(t);
    await cli(["attach", pid, "--json"], env);
    const attached = await forkUs(t);
    const w = new StreamingCli(["watch", "forker.work", "--pid", pid], env);
    let watched: Fork;
    try {
      await w.waitFor((l) => l.event === "watch_started");
      watched = await forkUs(t);
    } finally {
      w.kill("SIGINT");
      await w.done;
    }
    await cli(["detach", "--pid", pid, "--json"], env);
    const detached = await forkUs(t);
    const show = (x: Fork) =>
      `${x.wait.toFixed(0)} µs (×${(x.wait / plain.wait).toFixed(2)}), child starts ${
        x.start.toFixed(0)
      } µs (×${(x.start / plain.start).toFixed(2)}), hook ${x.hook.toFixed(1)} µs`;
    return `${py.version.padEnd(7)} not attached ${plain.wait.toFixed(0)} µs, child starts ${
      plain.start.toFixed(0)
    } µs | attached ${show(attached)} | with a watch ${show(watched)} | after detach ${
      show(detached)
    }`;
  } finally {
    await t.stop();
  }
}

export async function benchForkAll(): Promise<string> {
  const lines = [
    `\nfork() in an attached process — os.fork() + waitpid() of a child that exits at once (mean of ` +
    `${FORKS}), fork() to the child's first line and peeka's at-fork hook in the child (medians), ` +
    `each the best of ${RUNS}; ratios to the same process not attached:`,
  ];
  for (const py of pythons()) lines.push(await benchFork(py));
  return lines.join("\n");
}

if (import.meta.main) console.log(await benchForkAll());
