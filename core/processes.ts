// The Python processes of this machine, as `ps` and the TUI's picker list them.
import { commandLine, processUid, readText } from "../process/procfs.ts";
import { hasSocket, sessionPaths } from "./session.ts";

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
