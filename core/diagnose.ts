// Why a target does not answer, read from /proc alone (nothing is asked of the
// agent, which is what stopped answering): exited, a zombie, stopped, a thread
// that likely holds the GIL, a thread stuck in the kernel, or no visible reason.

import { processState, readText, tracerPid } from "../process/procfs.ts";
import { PyStateReader } from "../process/pystate.ts";

export type Verdict = "exited" | "zombie" | "stopped" | "traced" | "gil" | "kernel" | "unknown";

export interface Diagnosis {
  pid: number;
  verdict: Verdict;
  /** One clause that says what the process is doing, e.g. "process 12 is stopped (state T)". */
  message: string;
  /** The thread the verdict is about, when there is one. */
  tid?: number;
}

interface TaskStat {
  tid: number;
  name: string;
  state: string;
  cpuTicks: number;
}

/** Futex wait: how CPython threads wait for the GIL (and for locks). */
const FUTEX_SYSCALL: Record<string, number> = { x86_64: 202, aarch64: 98 };

/** Parses a /proc stat line: the name sits in parentheses and may itself hold spaces. */
export function parseStat(
  text: string,
): { name: string; state: string; flags: number; cpuTicks: number } {
  const open = text.indexOf("("), close = text.lastIndexOf(")");
  const fields = text.slice(close + 2).split(" ");
  // After the name: state is field 3, flags 9, utime 14 and stime 15 (1-based in proc(5)).
  return {
    name: text.slice(open + 1, close),
    state: fields[0],
    flags: Number(fields[6]),
    cpuTicks: Number(fields[11]) + Number(fields[12]),
  };
}

/** The kernel's "this task is exiting" flag: set before it closes its files (so before a
 * client sees its connection close) and long before it becomes a zombie. */
const PF_EXITING = 0x4;

function isExiting(pid: number): boolean {
  const text = readText(`/proc/${pid}/stat`);
  return text !== null && (parseStat(text).flags & PF_EXITING) !== 0;
}

function tasks(pid: number): TaskStat[] {
  const found: TaskStat[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(`/proc/${pid}/task`)];
  } catch {
    return found;
  }
  for (const e of entries) {
    const text = readText(`/proc/${pid}/task/${e.name}/stat`);
    if (text === null) continue; // the thread ended meanwhile
    const s = parseStat(text);
    found.push({ tid: Number(e.name), name: s.name, state: s.state, cpuTicks: s.cpuTicks });
  }
  return found;
}

function waitsOnFutex(pid: number, tid: number): boolean {
  const wchan = readText(`/proc/${pid}/task/${tid}/wchan`) ?? "";
  if (wchan.includes("futex")) return true;
  const nr = FUTEX_SYSCALL[Deno.build.arch];
  const call = readText(`/proc/${pid}/task/${tid}/syscall`);
  return nr !== undefined && call !== null && Number(call.split(" ")[0]) === nr;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What can be told at a glance, without sampling: exited, a zombie, stopped; else null. */
export function glance(pid: number): Diagnosis | null {
  const state = processState(pid);
  if (state === null) return { pid, verdict: "exited", message: `process ${pid} has exited` };
  if (state === "Z" || state === "X") {
    return { pid, verdict: "zombie", message: `process ${pid} is a zombie (it has exited)` };
  }
  if (isExiting(pid)) return { pid, verdict: "exited", message: `process ${pid} is exiting` };
  return stoppedVerdict(pid, state, tasks(pid));
}

/**
 * Looks at the process now and over `sampleMs` (CPU use per thread) and says
 * the most likely reason its agent is silent. The GIL verdict is a guess: one
 * thread burning CPU while others wait on a futex is what a held GIL looks like.
 */
export async function diagnose(pid: number, sampleMs = 100): Promise<Diagnosis> {
  const first = glance(pid);
  if (first) return first;
  const before = new Map(tasks(pid).map((t) => [t.tid, t.cpuTicks]));
  await sleep(sampleMs);
  const now = tasks(pid);
  return glance(pid) ??
    gilVerdict(pid, now, before, sampleMs) ??
    kernelVerdict(pid, now) ??
    recordedGilVerdict(pid, now) ??
    {
      pid,
      verdict: "unknown",
      message: `process ${pid} is running and nothing shows why its agent is silent ` +
        "(a long command? PEEKA_REQUEST_TIMEOUT_MS sets a longer deadline, in ms)",
    };
}

function stoppedVerdict(pid: number, state: string, threads: TaskStat[]): Diagnosis | null {
  if (state === "T") {
    return {
      pid,
      verdict: "stopped",
      message: `process ${pid} is stopped (state T); resume it with \`kill -CONT ${pid}\``,
    };
  }
  const traced = threads.find((t) => t.state === "t" || t.state === "T");
  if (state === "t" || traced) {
    const by = tracerPid(pid);
    const which = traced && traced.tid !== pid
      ? `thread ${traced.tid} of process ${pid}`
      : `process ${pid}`;
    return {
      pid,
      verdict: "traced",
      tid: traced?.tid,
      message: `${which} is stopped (state ${traced?.state ?? state})` +
        (by ? ` by the debugger or tracer pid ${by}` : ""),
    };
  }
  return null;
}

/** Clock ticks per second of /proc CPU times (USER_HZ: 100 on Linux). */
const TICKS_PER_SECOND = 100;

function gilVerdict(
  pid: number,
  threads: TaskStat[],
  before: Map<number, number>,
  sampleMs: number,
): Diagnosis | null {
  // The holder runs the whole time; waiters run only in blinks (a GIL waiter wakes every
  // few ms to ask for it, so it is often seen in state R, but uses little CPU).
  const used = threads.map((t) => ({ t, ticks: t.cpuTicks - (before.get(t.tid) ?? t.cpuTicks) }))
    .sort((a, b) => b.ticks - a.ticks);
  const [top, next] = used;
  const window = (sampleMs / 1000) * TICKS_PER_SECOND;
  const runsAlone = top && top.ticks >= Math.max(1, window * 0.3) &&
    (!next || next.ticks * 2 < top.ticks);
  const holder = runsAlone ? top.t : soleRunner(pid, threads);
  if (!holder) return null;
  const waiting = threads.filter((t) => t !== holder && waitsOnFutex(pid, t.tid));
  if (waiting.length === 0) return null;
  return {
    pid,
    verdict: "gil",
    tid: holder.tid,
    message: `thread ${holder.tid} (${holder.name}) of process ${pid} is running and likely ` +
      `holds the GIL (${waiting.length} other thread(s), the agent's among them, wait for it)`,
  };
}

/** When the CPU sample could not tell (a loaded machine): the GIL holder as the interpreter
 * records it, read from outside as `peeka dump` does, while other threads wait on a futex. */
function recordedGilVerdict(pid: number, threads: TaskStat[]): Diagnosis | null {
  try {
    const holder = PyStateReader.open(pid).read().threads.find((t) =>
      t.holdsGil && t.mainInterpreter
    );
    const task = holder && threads.find((t) => t.tid === holder.nativeId);
    if (!holder || !task) return null;
    const waiting = threads.filter((t) => t !== task && waitsOnFutex(pid, t.tid));
    if (waiting.length === 0) return null;
    const top = holder.stack?.[0];
    const where = top ? `, in ${top.qualname} (${top.file}:${top.line ?? "?"})` : "";
    return {
      pid,
      verdict: "gil",
      tid: task.tid,
      message: `thread ${task.tid} (${task.name}) of process ${pid} is running and likely ` +
        `holds the GIL (the interpreter records it as the holder${where}; ${waiting.length} ` +
        "other thread(s), the agent's among them, wait for it)",
    };
  } catch {
    return null; // a layout that does not validate: no verdict rather than a wrong one
  }
}

/** The one thread running and not in a futex, when the CPU sample was too short to tell. */
function soleRunner(pid: number, threads: TaskStat[]): TaskStat | null {
  const running = threads.filter((t) => t.state === "R" && !waitsOnFutex(pid, t.tid));
  return running.length === 1 ? running[0] : null;
}

function kernelVerdict(pid: number, threads: TaskStat[]): Diagnosis | null {
  const stuck = threads.find((t) => t.state === "D");
  if (!stuck) return null;
  return {
    pid,
    verdict: "kernel",
    tid: stuck.tid,
    message: `thread ${stuck.tid} (${stuck.name}) of process ${pid} waits in the kernel ` +
      `(state D: uninterruptible I/O); it may hold the GIL`,
  };
}
