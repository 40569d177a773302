// The Python processes of this machine, as `ps` and the TUI's picker list them: each with its
// parent, its Python children and the role its command line tells (core/roles.ts).
import { commandLine, namespacePid, processUid, readText } from "../process/procfs.ts";
import { AgentClient } from "./protocol.ts";
import { hasSocket, sessionPaths } from "./session.ts";
import { roleOf } from "./roles.ts";

export interface PythonProcess {
  pid: number;
  /** The parent's pid (0 when unknown). */
  ppid: number;
  uid: number | null;
  version: string;
  interpreter: string;
  command: string;
  /** Whether an agent socket exists in the process's session directory. */
  attached: boolean;
  /** master, worker, spawn worker, forkserver…; null when the command line does not tell. */
  role: string | null;
  /** The pids of its Python children. */
  children: number[];
}

const PY = /\s(\/\S*(?:lib)?python(\d+\.\d+)[^/\s]*)$/m;

/** The interpreter a process has mapped (a python binary or libpython; never /proc/PID/exe). */
function mappedPython(pid: number): { interpreter: string; version: string } | null {
  const maps = readText(`/proc/${pid}/maps`);
  const m = maps ? PY.exec(maps) : null;
  return m ? { interpreter: m[1], version: m[2] } : null;
}

/** The parent's pid from /proc/PID/stat (0 when the process is gone). */
export function parentPid(pid: number): number {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return 0;
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) || 0;
}

/** Whether a process runs CPython (it has an interpreter mapped). */
export function isPython(pid: number): boolean {
  return mappedPython(pid) !== null;
}

function sessionExists(pid: number): boolean {
  try {
    return hasSocket(sessionPaths(pid));
  } catch {
    return false; // exited meanwhile
  }
}

/** Every process whose mappings include a python binary or libpython, with its family. */
export function pythonProcesses(): PythonProcess[] {
  const found: PythonProcess[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const pid = Number(e.name);
    if (pid === Deno.pid) continue;
    const python = mappedPython(pid);
    if (!python) continue;
    found.push({
      pid,
      ppid: parentPid(pid),
      uid: processUid(pid),
      ...python,
      command: commandLine(pid),
      attached: sessionExists(pid),
      role: null,
      children: [],
    });
  }
  return withFamily(found.sort((a, b) => a.pid - b.pid));
}

/** Fills in each process's Python children and its role (which needs the parent's command). */
function withFamily(list: PythonProcess[]): PythonProcess[] {
  const byPid = new Map(list.map((p) => [p.pid, p]));
  for (const p of list) byPid.get(p.ppid)?.children.push(p.pid);
  for (const p of list) {
    const parent = byPid.get(p.ppid);
    p.role = roleOf(p.command, parent?.command ?? null);
  }
  return list;
}

/** Every process's children, from one pass over /proc (the kernel's per-thread `children`
 * lists are not built into every kernel). */
function childrenMap(): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const pid = Number(e.name);
    const ppid = parentPid(pid);
    if (!ppid) continue;
    const siblings = map.get(ppid);
    if (siblings) siblings.push(pid);
    else map.set(ppid, [pid]);
  }
  return map;
}

/** Every Python descendant of `root` (children, grandchildren…), parents first. A child that
 * is not Python (a shell, `sleep`) is passed through: its own Python children count. */
export function pythonDescendants(root: number): number[] {
  const children = childrenMap();
  const found: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length) {
    const pid = queue.shift()!;
    if (isPython(pid)) found.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}

/** One process's role, read as `ps` would (its parent's command line decides a fork's role). */
export function roleOfProcess(pid: number): string | null {
  const parent = parentPid(pid);
  const parentCommand = parent && isPython(parent) ? commandLine(parent) : null;
  return roleOf(commandLine(pid), parentCommand);
}

/** How long `ps` waits for an agent's hello. */
const HELLO_MS = 500;

/** Whether the agent behind an attached process's socket answers a hello (a socket left by an
 * agent that stopped serving does not). */
export async function agentAnswers(pid: number): Promise<boolean> {
  let client: AgentClient | null = null;
  try {
    client = await AgentClient.connect(sessionPaths(pid).socket, HELLO_MS);
    const hello = await client.request("hello", {}, undefined, HELLO_MS);
    return hello.pid === namespacePid(pid);
  } catch {
    return false;
  } finally {
    client?.close();
  }
}
