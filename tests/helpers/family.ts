// Process families for the tests and benches of many processes (tests/processes.test.ts,
// bench/processes.ts): a process's children as /proc tells them (what peeka is checked
// against), a gunicorn launched on a framework environment, and killing what was started.
import type { Python } from "./env.ts";
import { FRAMEWORK_TARGETS, frameworkPython } from "./frameworks.ts";

/** The children of a process, from each /proc/PID/stat. */
export function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) {
        found.push(Number(e.name));
      }
    } catch { /* exited */ }
  }
  return found.sort((a, b) => a - b);
}

export function killPid(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* gone */ }
}

/** A gunicorn master started with a settings file and an app of tests/targets/frameworks;
 * `log` grows with what it writes to stderr (the port, the workers it boots). */
export interface Gunicorn {
  child: Deno.ChildProcess;
  log: () => string;
}

export function spawnGunicorn(py: Python, settings: string, app: string): Gunicorn {
  const fw = frameworkPython(py);
  const args = ["-m", "gunicorn", "-c", `${FRAMEWORK_TARGETS}/${settings}`];
  const child = new Deno.Command(fw.python.path, {
    args: [...args, "--chdir", FRAMEWORK_TARGETS, app],
    env: fw.env,
    cwd: "/tmp",
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  void (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
  })();
  return { child, log: () => log };
}
