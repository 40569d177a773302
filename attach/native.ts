// The native injector: makes one thread of a CPython process run a bootstrap
// string through the C API, using only ptrace and process memory access.
//
// Sequence, one function each in hijack() (each step is undone by the kernel if peeka
// dies before the next):
//   1. stopThread: pick a thread from /proc (prefer one blocked in a system call
//      outside the interpreter), PTRACE_SEIZE + PTRACE_INTERRUPT it;
//   2. saveState: its registers and its whole XSAVE area;
//   3. chooseRoute: run the bootstrap on this thread ("direct") or queue it for
//      the main thread ("pending"), or leave this thread alone;
//   4. layOutFrame: a signal frame built from the saved state, the function
//      table and a scratch stack, below the red zone of its stack;
//   5. write: those, and the trampoline and the bootstrap string into the
//      padding after a code segment (never executed by the program, identical
//      bytes on every attach);
//   6. redirect: one PTRACE_SETREGS points the thread at the trampoline (its
//      register contract is in trampoline.ts); PTRACE_DETACH.
// The thread then runs the bootstrap (directly when it is safe, otherwise as a
// pending call that the main thread runs at its next safe point) and returns
// to exactly where it was through rt_sigreturn. See trampoline.ts.

import {
  effectiveUid,
  ERRNO,
  NT_X86_XSTATE,
  PTRACE,
  ptrace,
  ptraceEvent,
  readMemory,
  stoppedSignal,
  SysError,
  waitThread,
  writeMemory,
} from "../process/libc.ts";
import { type ElfImage, imageBase, PF_X, PT_LOAD, readElfFile } from "../process/elf.ts";
import { AttachError } from "../process/errors.ts";
import {
  type Interpreter,
  listThreads,
  type Mapping,
  processExists,
  processState,
  processUid,
  readMaps,
  readText,
  symbolAddress,
  type ThreadState,
  tracerPid,
} from "../process/procfs.ts";
import {
  buildFrame,
  FRAME_SIZE,
  REG,
  resumePoint,
  signalFpState,
  TRAMPOLINE,
  trampolineEntry,
  USER_REGS_SIZE,
} from "./trampoline.ts";

// x86-64 system calls in which a thread waits with the GIL released and no
// interpreter or libc lock held: running Python on it is safe.
const SAFE_WAITS = new Set([
  0, // read
  7, // poll
  23, // select
  34, // pause
  35, // nanosleep
  42, // connect
  43, // accept
  45, // recvfrom
  47, // recvmsg
  61, // wait4
  128, // rt_sigtimedwait
  230, // clock_nanosleep
  232, // epoll_wait
  247, // waitid
  270, // pselect6
  271, // ppoll
  281, // epoll_pwait
  288, // accept4
  299, // recvmmsg
  441, // epoll_pwait2
]);
const FUTEX = 202;

// How a wait status shows the stop of a thread we interrupted (see ptrace(2), "group-stop").
const SIGTRAP = 5;
const SIGSTOP = 19;
const PTRACE_EVENT_STOP = 128;

const RED_ZONE = 128; // bytes below rsp the interrupted code may still use (System V ABI)
const SYSCALL_INSN = [0x0f, 0x05];

/** "direct": the thread runs the bootstrap itself; "pending": queued for the main thread. */
export type Route = "direct" | "pending";

export interface NativeResult {
  tid: number;
  route: Route;
  interpreter: string;
}

/** Refuses a target peeka cannot attach to, with the reason; `tracer: false` skips the
 * tracer check (an attach waiting for another peeka's attach to end checks it afterwards). */
export function checkTarget(pid: number, tracer = true): void {
  if (!Number.isInteger(pid) || pid <= 0) throw new AttachError("BAD_PID", `invalid pid ${pid}`);
  if (!processExists(pid)) {
    throw new AttachError(
      "NO_SUCH_PROCESS",
      `no process with pid ${pid}; find Python processes with 'peeka ps'`,
    );
  }
  const state = processState(pid);
  if (state === "Z" || state === "X") {
    throw new AttachError(
      "TARGET_EXITED",
      `process ${pid} is a zombie (it has exited; its parent has not collected it yet): nothing to attach to`,
    );
  }
  if (state === "T") {
    throw new AttachError(
      "TARGET_STOPPED",
      `process ${pid} is stopped (state T, e.g. by SIGSTOP or Ctrl-Z): no thread can run the agent; ` +
        `resume it with 'kill -CONT ${pid}' and attach again`,
    );
  }
  const uid = processUid(pid);
  const me = effectiveUid();
  if (me !== 0 && uid !== me) {
    throw new AttachError(
      "PERMISSION_DENIED",
      `process ${pid} belongs to uid ${uid}; run peeka as that user or as root`,
    );
  }
  // Same user (or root) and still no access: ptrace itself is blocked for us.
  if (readText(`/proc/${pid}/maps`) === null) {
    throw new AttachError(
      "PTRACE_DENIED",
      `ptrace access to process ${pid} is denied although peeka runs as uid ${me}; check ` +
        `/proc/sys/kernel/yama/ptrace_scope, seccomp, or the container's capabilities (CAP_SYS_PTRACE)`,
    );
  }
  const by = tracer ? tracerPid(pid) : 0;
  if (by !== 0) {
    throw new AttachError(
      "ALREADY_TRACED",
      `process ${pid} is already being traced by pid ${by} (a debugger?); detach it first`,
    );
  }
}

/**
 * Makes one thread of `pid` run `bootstrap`. The target was checked and its interpreter found
 * by attach(); the mappings are read here, as they are now (thread stacks come and go).
 */
export function injectNative(pid: number, interp: Interpreter, bootstrap: string): NativeResult {
  refuseShadowStacks(pid);
  const maps = readMaps(pid);
  const payload = preparePayload(interp, bootstrap);
  const slack = findSlack(pid, maps, interp, payload.bytes.length);

  const errors: string[] = [];
  for (const thread of rankThreads(pid)) {
    try {
      const route = hijack(pid, thread, maps, slack, payload);
      if (route) return { tid: thread.tid, route, interpreter: interp.path };
    } catch (e) {
      if (e instanceof SysError && e.errno === ERRNO.ESRCH) continue; // the thread exited meanwhile
      if (e instanceof SysError && e.errno === ERRNO.EPERM) {
        throw new AttachError(
          "PTRACE_DENIED",
          `ptrace is not permitted on process ${pid} (${e.message}); check /proc/sys/kernel/yama/ptrace_scope, ` +
            `seccomp or container capabilities (CAP_SYS_PTRACE)`,
        );
      }
      if (e instanceof SysError && e.errno === ERRNO.EBUSY) {
        throw new AttachError(
          "ALREADY_TRACED",
          `process ${pid} is already being traced; detach the other debugger`,
        );
      }
      errors.push(`thread ${thread.tid}: ${(e as Error).message}`);
    }
  }
  throw new AttachError(
    "INJECT_FAILED",
    `no thread of process ${pid} could be used: ${errors.join("; ") || "none found"}`,
  );
}

function refuseShadowStacks(pid: number): void {
  if (/x86_Thread_features:.*shstk/.test(readText(`/proc/${pid}/status`) ?? "")) {
    throw new AttachError(
      "UNSUPPORTED",
      `process ${pid} uses CET shadow stacks; the native injector cannot attach`,
    );
  }
}

/** What is written into the target: the same for every thread tried. */
interface Payload {
  /** The trampoline, padding to 8 bytes, the bootstrap source and its NUL. */
  bytes: Uint8Array;
  /** Where the bootstrap source starts in `bytes`. */
  bootstrapOffset: number;
  /** The trampoline's function table (see TRAMPOLINE). */
  table: BigUint64Array;
}

function preparePayload(interp: Interpreter, bootstrap: string): Payload {
  const table = new BigUint64Array([
    symbolAddress(interp, "PyGILState_Check"),
    symbolAddress(interp, "PyGILState_Ensure"),
    symbolAddress(interp, "PyRun_SimpleString"),
    symbolAddress(interp, "PyGILState_Release"),
    symbolAddress(interp, "Py_AddPendingCall"),
  ]);
  const source = new TextEncoder().encode(bootstrap);
  const bootstrapOffset = TRAMPOLINE.length + 8 - (TRAMPOLINE.length % 8);
  const bytes = new Uint8Array(bootstrapOffset + source.length + 1);
  bytes.set(TRAMPOLINE);
  bytes.set(source, bootstrapOffset);
  return { bytes, bootstrapOffset, table };
}

/** Threads in the order to try: blocked in a safe wait (main first), then futex waiters, then the main thread. */
function rankThreads(pid: number): ThreadState[] {
  const score = (t: ThreadState) => {
    if (SAFE_WAITS.has(t.syscall)) return t.tid === pid ? 0 : 1;
    if (t.syscall === FUTEX) return t.tid === pid ? 2 : 3;
    return t.tid === pid ? 4 : 5;
  };
  // A thread that was just let go (after a PEP 768 attempt held every thread still) shows as
  // running for a moment while its system call restarts: look a few times, keep each thread's
  // best showing. hijack() checks the real state again once the thread is stopped.
  const best = new Map<number, ThreadState>();
  for (let look = 0; look < 3; look++) {
    if (look) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
    for (const t of listThreads(pid)) {
      const seen = best.get(t.tid);
      if (t.state !== "Z" && (!seen || score(t) < score(seen))) best.set(t.tid, t);
    }
  }
  return [...best.values()].sort((a, b) => score(a) - score(b) || a.tid - b.tid).slice(0, 4);
}

interface Slack {
  address: bigint;
  size: number;
}

/**
 * Finds padding after an executable segment of a mapped ELF file: bytes that
 * are mapped r-x but lie past the end of the segment's code, so nothing in the
 * program ever refers to them. The interpreter's own file first, then others.
 */
function findSlack(pid: number, maps: Mapping[], interp: Interpreter, need: number): Slack {
  const files = [
    interp.path,
    ...new Set(
      maps.filter((m) => m.path.startsWith("/") && m.perms.includes("x")).map((m) => m.path),
    ),
  ];
  for (const path of new Set(files)) {
    const first = maps.find((m) => m.path === path && m.offset === 0);
    if (!first) continue;
    let elf: ElfImage;
    try {
      elf = path === interp.path ? interp.elf : readElfFile(`/proc/${pid}/root${path}`);
    } catch {
      continue;
    }
    const bias = first.start - imageBase(elf);
    for (const seg of elf.segments) {
      if (seg.type !== PT_LOAD || !(seg.flags & PF_X)) continue;
      const end = bias + seg.vaddr + seg.filesz;
      const pageEnd = Math.ceil(end / 4096) * 4096;
      const start = Math.ceil(end / 16) * 16 + 16; // keep a gap after the last instruction
      if (pageEnd - start < need) continue;
      const m = maps.find((m) => m.start <= start && pageEnd <= m.end);
      if (!m || m.path !== path || !m.perms.startsWith("r-x")) continue;
      return { address: BigInt(start), size: pageEnd - start };
    }
  }
  throw new AttachError(
    "INJECT_FAILED",
    `no room for the trampoline in the code mappings of process ${pid}`,
  );
}

/** Stops one thread, prepares its trampoline and lets it go. Returns null if this thread is unsuitable. */
function hijack(
  pid: number,
  thread: ThreadState,
  maps: Mapping[],
  slack: Slack,
  payload: Payload,
): Route | null {
  const stopped = stopThread(thread.tid);
  try {
    const saved = saveState(thread.tid);
    const route = chooseRoute(pid, thread, saved.regs);
    if (!route) return null;
    const frame = layOutFrame(saved, maps, thread.tid === pid);
    write(pid, thread.tid, saved, frame, slack, payload);
    redirect(thread.tid, saved, frame, slack, payload, route);
    stopped.release();
    return route;
  } finally {
    stopped.release();
  }
}

/** A seized thread, stopped; release() lets it go (once), handing back a signal it stopped on. */
interface StoppedThread {
  release(): void;
}

function stopThread(tid: number): StoppedThread {
  ptrace(PTRACE.SEIZE, tid);
  let handBack = 0;
  let released = false;
  const stopped = {
    release() {
      if (released) return;
      released = true;
      try {
        ptrace(PTRACE.DETACH, tid, 0n, BigInt(handBack));
      } catch (e) {
        if (!(e instanceof SysError && e.errno === ERRNO.ESRCH)) throw e;
      }
    },
  };
  try {
    ptrace(PTRACE.INTERRUPT, tid);
    const status = waitThread(tid)!;
    if (!stoppedSignal(status)) throw new Error(`thread ${tid} exited while being stopped`);
    handBack = signalToHandBack(status);
  } catch (e) {
    stopped.release();
    throw e;
  }
  return stopped;
}

/** Our interrupt's stop hands nothing back; a signal-delivery stop hands its signal back on detach. */
function signalToHandBack(status: number): number {
  const sig = stoppedSignal(status);
  if (sig === SIGTRAP && ptraceEvent(status) === PTRACE_EVENT_STOP) return 0;
  return sig === SIGSTOP || sig === SIGTRAP ? 0 : sig;
}

interface SavedState {
  regs: BigInt64Array;
  xstate: Uint8Array;
}

function saveState(tid: number): SavedState {
  const regs = new BigInt64Array(USER_REGS_SIZE / 8);
  ptrace(PTRACE.GETREGS, tid, 0n, ptrAddr(regs));
  return { regs, xstate: getXState(tid) };
}

/** Direct when blocked in a safe wait; null when the thread is not where it can be used. */
function chooseRoute(pid: number, thread: ThreadState, regs: BigInt64Array): Route | null {
  const inSyscall = regs[REG.orig_rax] >= 0n;
  const direct = inSyscall && SAFE_WAITS.has(Number(regs[REG.orig_rax]));
  if (!inSyscall && thread.tid !== pid && thread.syscall !== -1) return null; // it woke up: try another
  const { rip, restarts } = resumePoint(regs);
  if (restarts) {
    const insn = readMemory(pid, rip, 2);
    if (insn[0] !== SYSCALL_INSN[0] || insn[1] !== SYSCALL_INSN[1]) return null; // not at a plain `syscall`: leave it alone
  }
  return direct ? "direct" : "pending";
}

/** Where things go on the thread's stack, below the red zone. */
interface FrameLayout {
  /** The signal frame's fpstate, built from the saved XSAVE area. */
  fp: Uint8Array;
  fpAddr: bigint;
  frameAddr: bigint;
  tableAddr: bigint;
  /** Top of the trampoline's own stack. */
  scratch: bigint;
}

/** Stack layout below the red zone: [fpstate (64-aligned)] [frame] [table] [scratch stack...] */
function layOutFrame(saved: SavedState, maps: Mapping[], isMain: boolean): FrameLayout {
  const rsp = BigInt.asUintN(64, saved.regs[REG.rsp]);
  const fp = signalFpState(saved.xstate);
  const fpAddr = (rsp - BigInt(RED_ZONE) - BigInt(fp.length)) & ~63n;
  const frameAddr = (fpAddr - BigInt(FRAME_SIZE)) & ~15n;
  const tableAddr = (frameAddr - 64n) & ~15n;
  const scratch = (tableAddr - 64n) & ~15n;
  checkStackRoom(maps, rsp, scratch, isMain);
  return { fp, fpAddr, frameAddr, tableAddr, scratch };
}

function write(
  pid: number,
  tid: number,
  saved: SavedState,
  frame: FrameLayout,
  slack: Slack,
  payload: Payload,
): void {
  writeMemory(pid, frame.fpAddr, frame.fp);
  writeMemory(pid, frame.frameAddr, buildFrame(saved.regs, frame.fpAddr));
  writeMemory(pid, frame.tableAddr, new Uint8Array(payload.table.buffer));
  pokeCode(pid, tid, slack.address, payload.bytes);
}

/** Points the thread at the trampoline, with the inputs of its register contract. */
function redirect(
  tid: number,
  saved: SavedState,
  frame: FrameLayout,
  slack: Slack,
  payload: Payload,
  route: Route,
): void {
  const entry = trampolineEntry(saved.regs, {
    code: slack.address,
    stack: frame.scratch,
    table: frame.tableAddr,
    ucontext: frame.frameAddr + 8n,
    bootstrap: slack.address + BigInt(payload.bootstrapOffset),
    direct: route === "direct",
  });
  ptrace(PTRACE.SETREGS, tid, 0n, ptrAddr(entry));
}

function ptrAddr(buf: ArrayBufferView): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf as BufferSource)));
}

function getXState(tid: number): Uint8Array {
  const buf = new Uint8Array(64 * 1024);
  const iov = new BigUint64Array([ptrAddr(buf), BigInt(buf.length)]);
  ptrace(PTRACE.GETREGSET, tid, BigInt(NT_X86_XSTATE), ptrAddr(iov));
  return buf.slice(0, Number(iov[1]));
}

/** The trampoline's data and scratch stack must fit in the thread's stack mapping. */
function checkStackRoom(maps: Mapping[], rsp: bigint, low: bigint, isMain: boolean): void {
  const sp = Number(rsp);
  const m = maps.find((m) => m.start <= sp - 1 && sp - 1 < m.end);
  if (!m || !m.perms.startsWith("rw")) {
    throw new Error("stack pointer is not in a writable mapping");
  }
  if (Number(low) < m.start) throw new Error("not enough stack below the red zone");
  // The C API calls need real stack too; the main thread's stack grows on demand.
  if (!isMain && Number(low) - m.start < 256 * 1024) {
    throw new Error("thread stack too small to run Python on");
  }
}

/**
 * Writes the trampoline into code padding with PTRACE_POKEDATA (allowed on
 * read-only code pages for the tracer, whatever /proc/PID/mem permits).
 * Skips words that already hold the same bytes, so a second attach rewrites nothing.
 */
function pokeCode(pid: number, tid: number, addr: bigint, data: Uint8Array): void {
  const len = Math.ceil(data.length / 8) * 8;
  const current = readMemory(pid, addr, len);
  const wanted = current.slice();
  wanted.set(data);
  const ours = current.subarray(0, TRAMPOLINE.length).every((b, i) => b === TRAMPOLINE[i]);
  if (!ours && current.some((b) => b !== 0)) {
    throw new Error("the code padding is not empty: something else uses it");
  }
  const cur = new DataView(current.buffer), want = new DataView(wanted.buffer);
  for (let o = 0; o < len; o += 8) {
    const w = want.getBigUint64(o, true);
    if (cur.getBigUint64(o, true) !== w) ptrace(PTRACE.POKEDATA, tid, addr + BigInt(o), w);
  }
}
