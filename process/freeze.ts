// Holding every thread of a process still for a moment, so a few writes to
// its memory cannot interleave with its own updates. If peeka dies meanwhile,
// the kernel detaches the threads and they simply go on.
import { ERRNO, PTRACE, ptrace, stoppedSignal, SysError, waitThread } from "./libc.ts";
import { AttachError } from "./errors.ts";
import { listThreads } from "./procfs.ts";

export function withThreadsStopped<T>(pid: number, fn: () => T): T {
  const held: { tid: number; signal: number }[] = [];
  try {
    for (const { tid, state } of listThreads(pid)) {
      if (state === "Z") continue;
      try {
        ptrace(PTRACE.SEIZE, tid);
      } catch (e) {
        if (e instanceof SysError && e.errno === ERRNO.ESRCH) continue; // exited meanwhile
        if (e instanceof SysError && e.errno === ERRNO.EPERM) {
          throw new AttachError(
            "PTRACE_DENIED",
            `ptrace is not permitted on process ${pid} (${e.message})`,
          );
        }
        throw e;
      }
      const entry = { tid, signal: 0 };
      held.push(entry);
      ptrace(PTRACE.INTERRUPT, tid);
      const sig = stoppedSignal(waitThread(tid)!);
      // A signal that arrived meanwhile is handed back on detach.
      if (sig && sig !== 5 && sig !== 19) entry.signal = sig;
    }
    return fn();
  } finally {
    for (const { tid, signal } of held) {
      try {
        ptrace(PTRACE.DETACH, tid, 0n, BigInt(signal));
      } catch { /* exited */ }
    }
  }
}
