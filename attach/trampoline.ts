// The code a hijacked thread runs, and the signal frame it returns through.
//
// Why a self-contained trampoline rather than a tracer that calls functions
// one by one: once the tracer sets the thread's registers and lets go, the
// thread finishes the injection *by itself* and puts every register, the
// whole XSAVE state, the signal mask and the alternate signal stack back
// through rt_sigreturn — the same path the kernel uses after a signal
// handler. If peeka is killed at any instant, the thread either was never
// touched or completes the trampoline on its own: no return address that
// faults without a tracer, no breakpoint byte anywhere.

/**
 * x86-64 machine code, position independent, identical for every target.
 * Inputs (set by the tracer in the thread's registers):
 *   rbx = table of 5 function pointers: PyGILState_Check, PyGILState_Ensure,
 *         PyRun_SimpleString, PyGILState_Release, Py_AddPendingCall
 *   r12 = address of the ucontext of the prepared signal frame
 *   r13 = the bootstrap source (NUL-terminated, in memory that outlives us)
 *   r14 = bit 0 set when the thread was blocked in a system call outside
 *         the interpreter's locks, so running Python on it directly is safe
 *   rsp = 16-byte aligned scratch stack below the frame
 *
 *   mov eax,14; xor edi,edi; xor esi,esi; lea rdx,[r12+296]; mov r10d,8; syscall
 *       ; rt_sigprocmask(SIG_BLOCK, NULL, &uc.uc_sigmask): keep the thread's mask
 *   mov eax,131; xor edi,edi; lea rsi,[r12+16]; syscall
 *       ; sigaltstack(NULL, &uc.uc_stack): keep its alternate signal stack
 *   test r14d,1; jz pending
 *   call [rbx]; test eax,eax; jnz pending      ; holds the GIL? then not here
 *   call [rbx+8]; mov r15d,eax                 ; st = PyGILState_Ensure()
 *   mov rdi,r13; call [rbx+16]                 ; PyRun_SimpleString(code)
 *   mov edi,r15d; call [rbx+24]                ; PyGILState_Release(st)
 *   jmp finish
 * pending:                                      ; run it at the next safe point
 *   mov rdi,[rbx+16]; mov rsi,r13; call [rbx+32] ; Py_AddPendingCall(PyRun_SimpleString, code)
 * finish:
 *   mov rsp,r12; mov eax,15; syscall            ; rt_sigreturn: back to where it was
 *   ud2
 */
export const TRAMPOLINE = hex(
  "b80e000000 31ff 31f6 498d942428010000 41ba08000000 0f05" +
    "b883000000 31ff 498d742410 0f05" +
    "41f7c601000000 741a" +
    "ff13 85c0 7514" +
    "ff5308 4189c7" +
    "4c89ef ff5310" +
    "4489ff ff5318" +
    "eb0a" +
    "488b7b10 4c89ee ff5320" +
    "4c89e4 b80f000000 0f05 0f0b",
);

/** The inputs of the register contract above, as the tracer knows them. */
export interface TrampolineInputs {
  /** Where TRAMPOLINE was written (rip). */
  code: bigint;
  /** The scratch stack, 16-byte aligned, below everything else (rsp). */
  stack: bigint;
  /** The table of 5 function pointers (rbx). */
  table: bigint;
  /** The ucontext of the prepared signal frame (r12), 8 bytes past the frame's start. */
  ucontext: bigint;
  /** The NUL-terminated bootstrap source (r13). */
  bootstrap: bigint;
  /** Blocked in a safe system call: run Python on this thread directly (r14 bit 0). */
  direct: boolean;
}

/** The registers that start the trampoline: the saved ones, with the contract's inputs set. */
export function trampolineEntry(saved: BigInt64Array, input: TrampolineInputs): BigInt64Array {
  const next = saved.slice();
  next[REG.rip] = input.code;
  next[REG.rsp] = input.stack;
  next[REG.rbx] = input.table;
  next[REG.r12] = input.ucontext;
  next[REG.r13] = input.bootstrap;
  next[REG.r14] = input.direct ? 1n : 0n;
  next[REG.rax] = 0n;
  next[REG.orig_rax] = -1n; // no restart processing on our entry: the frame carries the restart
  return next;
}

function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  return new Uint8Array(clean.match(/../g)!.map((b) => parseInt(b, 16)));
}

/** Offsets in struct user_regs_struct (PTRACE_GETREGS), in 8-byte words. */
export const REG = {
  r15: 0,
  r14: 1,
  r13: 2,
  r12: 3,
  rbp: 4,
  rbx: 5,
  r11: 6,
  r10: 7,
  r9: 8,
  r8: 9,
  rax: 10,
  rcx: 11,
  rdx: 12,
  rsi: 13,
  rdi: 14,
  orig_rax: 15,
  rip: 16,
  cs: 17,
  eflags: 18,
  rsp: 19,
  ss: 20,
  fs_base: 21,
  gs_base: 22,
  ds: 23,
  es: 24,
  fs: 25,
  gs: 26,
} as const;
export const USER_REGS_SIZE = 27 * 8;

// Kernel return codes that mean "restart this system call".
const ERESTARTSYS = -512n,
  ERESTARTNOINTR = -513n,
  ERESTARTNOHAND = -514n,
  ERESTART_RESTARTBLOCK = -516n;
const RESTART_CODES = [ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK];

/** Where the interrupted thread must continue, and with which rax. */
export function resumePoint(regs: BigInt64Array): { rip: bigint; rax: bigint; restarts: boolean } {
  const orig = regs[REG.orig_rax], rax = regs[REG.rax], rip = regs[REG.rip];
  if (orig >= 0n && RESTART_CODES.includes(rax)) {
    // Re-execute the same system call instruction with its original number,
    // as the kernel does for a restart. (For ERESTART_RESTARTBLOCK the kernel
    // would use restart_syscall, whose state rt_sigreturn clears; re-issuing
    // the call is equivalent for absolute timeouts, and restarts a relative
    // one from its full length.)
    return { rip: rip - 2n, rax: orig, restarts: true };
  }
  return { rip, rax, restarts: false };
}

// struct ucontext (x86-64 kernel ABI): flags 0, link 8, stack 16 (24 bytes),
// mcontext 40 (struct sigcontext, 256 bytes), sigmask 296 (8 bytes).
const UC_MCONTEXT = 40;
export const UC_SIGMASK = 296;
const UC_SIZE = 304;
/** rt_sigframe: return address (8), ucontext, siginfo (128). */
export const FRAME_SIZE = 8 + UC_SIZE + 128;
const UC_FLAGS = 1n | 2n | 4n; // UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS

const FP_XSTATE_MAGIC1 = 0x46505853;
const FP_XSTATE_MAGIC2 = 0x46505845;

const XFEATURE_TILEDATA = 1n << 18n; // AMX tile data: dynamically enabled, 8 KiB, last in the layout
const TILEDATA_SIZE = 8192;

/**
 * Turns the XSAVE image from PTRACE_GETREGSET(NT_X86_XSTATE) into a signal
 * frame's fpstate. For ptrace the kernel stores XCR0 in the first software-
 * reserved bytes (offset 464); a signal frame wants the _fpx_sw_bytes there
 * instead (magic, sizes, features) and a second magic word after the state.
 * AMX tile data is left out: a thread without AMX permission could not take
 * it back, and the trampoline never touches the tiles, so they stay as they are.
 */
export function signalFpState(xstate: Uint8Array): Uint8Array {
  if (xstate.length < 576) throw new Error(`XSAVE image of ${xstate.length} bytes is too small`);
  const xcr0 = new DataView(xstate.buffer, xstate.byteOffset).getBigUint64(464, true);
  if ((xcr0 & 3n) !== 3n) {
    throw new Error(`unexpected XCR0 0x${xcr0.toString(16)} in the XSAVE image`);
  }
  const stateSize = xstate.length - ((xcr0 & XFEATURE_TILEDATA) ? TILEDATA_SIZE : 0);
  const out = new Uint8Array(Math.ceil((xstate.length + 4) / 64) * 64);
  out.set(xstate);
  const v = new DataView(out.buffer);
  out.fill(0, 464, 512);
  v.setUint32(464, FP_XSTATE_MAGIC1, true);
  v.setUint32(468, stateSize + 4, true); // extended_size
  v.setBigUint64(472, xcr0 & ~XFEATURE_TILEDATA, true); // xfeatures
  v.setUint32(480, stateSize, true); // xstate_size
  v.setUint32(stateSize, FP_XSTATE_MAGIC2, true);
  // The header's XSTATE_BV must not claim what we do not restore.
  v.setBigUint64(512, v.getBigUint64(512, true) & ~XFEATURE_TILEDATA, true);
  return out;
}

/** The rt_sigframe (starting at its 8-byte return slot) that restores `regs` when fpstate is at `fpAddr`. */
export function buildFrame(regs: BigInt64Array, fpAddr: bigint): Uint8Array {
  const frame = new Uint8Array(FRAME_SIZE);
  const v = new DataView(frame.buffer);
  const uc = 8;
  v.setBigUint64(uc + 0, UC_FLAGS, true);
  const mc = uc + UC_MCONTEXT;
  const at = regs;
  const { rip, rax } = resumePoint(regs);
  const put = (off: number, val: bigint) => v.setBigInt64(mc + off, val, true);
  put(0, at[REG.r8]), put(8, at[REG.r9]), put(16, at[REG.r10]), put(24, at[REG.r11]);
  put(32, at[REG.r12]), put(40, at[REG.r13]), put(48, at[REG.r14]), put(56, at[REG.r15]);
  put(64, at[REG.rdi]), put(72, at[REG.rsi]), put(80, at[REG.rbp]), put(88, at[REG.rbx]);
  put(96, at[REG.rdx]), put(104, rax), put(112, at[REG.rcx]), put(120, at[REG.rsp]);
  put(128, rip), put(136, at[REG.eflags]);
  v.setUint16(mc + 144, Number(at[REG.cs]), true);
  v.setUint16(mc + 150, Number(at[REG.ss]), true);
  v.setBigUint64(mc + 184, fpAddr, true);
  return frame;
}
