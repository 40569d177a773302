// ps: list the Python processes this user can attach to.
import Table from "cli-table3";
import { defineCommand } from "../../core/command.ts";
import { commandLine, processUid, readText } from "../../process/procfs.ts";
import { hasSocket, sessionPaths } from "../../core/session.ts";

export interface PythonProcess {
  pid: number;
  uid: number | null;
  version: string;
  interpreter: string;
  command: string;
  attached: boolean;
}

const PY = /\s(\/\S*(?:lib)?python(\d+\.\d+)[^/\s]*)$/m;

/** Every process whose mappings include a python binary or libpython (never /proc/PID/exe). */
export function pythonProcesses(): PythonProcess[] {
  const found: PythonProcess[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const pid = Number(e.name);
    if (pid === Deno.pid) continue;
    const maps = readText(`/proc/${pid}/maps`);
    const m = maps ? PY.exec(maps) : null;
    if (!m) continue;
    let attached = false;
    try {
      attached = hasSocket(sessionPaths(pid));
    } catch { /* exited meanwhile */ }
    found.push({
      pid,
      uid: processUid(pid),
      version: m[2],
      interpreter: m[1],
      command: commandLine(pid),
      attached,
    });
  }
  return found.sort((a, b) => a.pid - b.pid);
}

export default defineCommand({
  name: "ps",
  summary: "List Python processes",
  description: "List running CPython processes (pid, version, command line, attached or not).",
  needsTarget: false,
  run({ out }) {
    const processes = pythonProcesses();
    out.result("ps", { processes, count: processes.length }, () => {
      if (!processes.length) return "No Python process found (or none this user may read).";
      const table = new Table({ head: ["PID", "UID", "PYTHON", "ATTACHED", "COMMAND"] });
      for (const p of processes) {
        table.push([
          p.pid,
          p.uid ?? "?",
          p.version,
          p.attached ? "yes" : "",
          p.command.slice(0, 80),
        ]);
      }
      return table.toString();
    });
    return Promise.resolve(0);
  },
});
