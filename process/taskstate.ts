// What the kernel says one thread of a process is doing: its run state, the system call it
// is blocked in, its name and its id inside the process's PID namespace (a container).
// Read from /proc/PID/task/TID; reading `syscall` needs ptrace access (same user), else null.
import { readText } from "./procfs.ts";

export interface TaskState {
  tid: number;
  /** The thread id the process sees for itself (innermost NSpid: differs in a container). */
  nsTid: number;
  /** The OS thread name (comm). */
  name: string;
  /** R, S, D, T, t, Z... as in /proc/PID/task/TID/stat. */
  state: string;
  stateName: string;
  /** The system call the thread is blocked in; null when running or not readable. */
  syscall: { number: number; name: string } | null;
}

const STATES: Record<string, string> = {
  R: "running",
  S: "sleeping",
  D: "disk sleep",
  T: "stopped",
  t: "tracing stop",
  Z: "zombie",
  X: "dead",
  I: "idle",
};

/** x86-64 numbers of the calls a Python thread usually waits in. */
const SYSCALLS: Record<number, string> = {
  0: "read",
  1: "write",
  7: "poll",
  17: "pread64",
  23: "select",
  34: "pause",
  35: "nanosleep",
  43: "accept",
  45: "recvfrom",
  47: "recvmsg",
  61: "wait4",
  202: "futex",
  230: "clock_nanosleep",
  232: "epoll_wait",
  247: "waitid",
  270: "pselect6",
  271: "ppoll",
  281: "epoll_pwait",
  288: "accept4",
  441: "epoll_pwait2",
};

/** Every live thread of the process, by tid. */
export function taskStates(pid: number): Map<number, TaskState> {
  const out = new Map<number, TaskState>();
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(`/proc/${pid}/task`)];
  } catch {
    return out;
  }
  for (const entry of entries) {
    const task = taskState(pid, Number(entry.name));
    if (task) out.set(task.tid, task);
  }
  return out;
}

export function taskState(pid: number, tid: number): TaskState | null {
  const dir = `/proc/${pid}/task/${tid}`;
  const stat = readText(`${dir}/stat`);
  if (!stat) return null;
  const close = stat.lastIndexOf(")");
  const state = stat.slice(close + 2, close + 3);
  const nspid = /^NSpid:\s+([\d\s]+)$/m.exec(readText(`${dir}/status`) ?? "");
  const ids = nspid ? nspid[1].trim().split(/\s+/).map(Number) : [tid];
  const call = (readText(`${dir}/syscall`) ?? "").trim().split(" ")[0];
  const number = /^\d+$/.test(call) ? Number(call) : null;
  return {
    tid,
    nsTid: ids[ids.length - 1],
    name: (readText(`${dir}/comm`) ?? "").trim(),
    state,
    stateName: STATES[state] ?? state,
    syscall: number === null ? null : { number, name: SYSCALLS[number] ?? `syscall ${number}` },
  };
}
