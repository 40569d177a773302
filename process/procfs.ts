// Reading a process from /proc: its mappings, threads, owner and the
// interpreter it runs. Nothing here stops or changes the process.

import { ElfError, type ElfImage, imageBase, readElfFile } from "./elf.ts";

export interface Mapping {
  start: number;
  end: number;
  perms: string;
  offset: number;
  path: string;
}

export interface ThreadState {
  tid: number;
  state: string; // R, S, D, T, t, Z...
  /** Syscall number the thread is blocked in, -1 when running in user space. */
  syscall: number;
}

export function readText(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

export function processExists(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

export function readMaps(pid: number): Mapping[] {
  const text = readText(`/proc/${pid}/maps`);
  if (text === null) throw new Deno.errors.PermissionDenied(`cannot read /proc/${pid}/maps`);
  const maps: Mapping[] = [];
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) \S+ \d+\s*(.*)$/.exec(line);
    if (!m) continue;
    maps.push({
      start: parseInt(m[1], 16),
      end: parseInt(m[2], 16),
      perms: m[3],
      offset: parseInt(m[4], 16),
      path: m[5],
    });
  }
  return maps;
}

/** Owner uid of the process (real uid from /proc/PID/status). */
export function processUid(pid: number): number | null {
  const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(readText(`/proc/${pid}/status`) ?? "");
  return m ? Number(m[2]) : null;
}

/** The fields of /proc/<pid>/stat after the command name (field 3, the state, first), null
 * when the process is gone. The name is skipped by its last ")": it may hold spaces and ")". */
export function statFields(pid: number | "self"): string[] | null {
  const stat = readText(`/proc/${pid}/stat`);
  return stat ? stat.slice(stat.lastIndexOf(")") + 2).split(" ") : null;
}

/** Process start time in clock ticks since boot: with the pid, a name for this process that reuse cannot fake. */
export function startTime(pid: number): number | null {
  const fields = statFields(pid);
  return fields ? Number(fields[19]) : null;
}

export function commandLine(pid: number): string {
  return (readText(`/proc/${pid}/cmdline`) ?? "").split("\0").filter(Boolean).join(" ");
}

/** The process's run state letter (R, S, D, T, t, Z, X...), null when it is gone. */
export function processState(pid: number): string | null {
  return statFields(pid)?.[0][0] ?? null;
}

/** The pid the process sees for itself (the innermost of NSpid: differs inside a container). */
export function namespacePid(pid: number): number {
  const m = /^NSpid:\s+([\d\s]+)$/m.exec(readText(`/proc/${pid}/status`) ?? "");
  const ids = m ? m[1].trim().split(/\s+/).map(Number) : [];
  return ids.length ? ids[ids.length - 1] : pid;
}

/** The tracer pid of a process, 0 when none. */
export function tracerPid(pid: number): number {
  const m = /^TracerPid:\s+(\d+)/m.exec(readText(`/proc/${pid}/status`) ?? "");
  return m ? Number(m[1]) : 0;
}

export function listThreads(pid: number): ThreadState[] {
  const out: ThreadState[] = [];
  for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
    const tid = Number(entry.name);
    const stat = readText(`/proc/${pid}/task/${tid}/stat`);
    if (!stat) continue;
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    const sc = (readText(`/proc/${pid}/task/${tid}/syscall`) ?? "running").trim().split(" ")[0];
    out.push({ tid, state, syscall: /^\d+$/.test(sc) ? Number(sc) : -1 });
  }
  return out.sort((a, b) => a.tid - b.tid);
}

export interface Interpreter {
  /** Path of the mapped file that defines the C API (python binary or libpython). */
  path: string;
  /** Where to read that file: through /proc so a target in another mount namespace works too. */
  readPath: string;
  /** Address at which the file's image base is mapped. */
  loadBias: number;
  elf: ElfImage;
  version: { major: number; minor: number } | null;
}

export class NotPythonError extends Error {}

const PY_NAME = /(?:^|\/)(?:lib)?python(\d+)\.(\d+)[^/]*$/;

/** Finds the CPython interpreter mapped into a process (never trusting /proc/PID/exe). */
export function findInterpreter(pid: number, maps = readMaps(pid)): Interpreter {
  const candidates = [...new Set(maps.filter((m) => PY_NAME.test(m.path)).map((m) => m.path))];
  // libpython first: in a shared build the binary only imports the C API.
  candidates.sort((a, b) => Number(b.includes("libpython")) - Number(a.includes("libpython")));
  for (const path of candidates) {
    const first = maps.find((m) => m.path === path && m.offset === 0);
    if (!first) continue;
    const readPath = fileReadPath(pid, path, first);
    let elf: ElfImage;
    try {
      elf = readElfFile(readPath);
    } catch (e) {
      if (e instanceof ElfError || e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    if (!elf.symbols.has("PyRun_SimpleString")) continue;
    const m = PY_NAME.exec(path)!;
    return {
      path,
      readPath,
      loadBias: first.start - imageBase(elf),
      elf,
      version: { major: Number(m[1]), minor: Number(m[2]) },
    };
  }
  throw new NotPythonError(
    `process ${pid} is not a CPython process (no python binary or libpython is mapped)`,
  );
}

function fileReadPath(pid: number, path: string, m: Mapping): string {
  const deleted = path.endsWith(" (deleted)");
  if (deleted) return `/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`;
  const viaRoot = `/proc/${pid}/root${path}`;
  try {
    Deno.statSync(viaRoot);
    return viaRoot;
  } catch {
    return path;
  }
}

/** Runtime address of a C API function, or throws naming what is missing. */
export function symbolAddress(interp: Interpreter, name: string): bigint {
  const v = interp.elf.symbols.get(name);
  if (v === undefined) throw new NotPythonError(`${interp.path} does not export ${name}`);
  return BigInt(interp.loadBias + v);
}
