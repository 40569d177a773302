// Unit test of where a hijacked thread resumes: resumePoint (a system call the kernel would
// restart is re-issued, anything else continues as it was) and the signal frame built from it,
// checked against the kernel's struct sigcontext (arch/x86/include/uapi/asm/sigcontext.h).
import { deepStrictEqual, strictEqual } from "node:assert";
import {
  buildFrame,
  FRAME_SIZE,
  REG,
  resumePoint,
  TRAMPOLINE,
  trampolineEntry,
  UC_SIGMASK,
  USER_REGS_SIZE,
} from "./trampoline.ts";

const SYSCALL_INSN = 2n; // `syscall` is 0f 05
const RESTARTS = { ERESTARTSYS: -512n, ERESTARTNOINTR: -513n, ERESTARTNOHAND: -514n };
const ERESTART_RESTARTBLOCK = -516n;
const EINTR = -4n;

/** Registers of a thread stopped at `rip`, after system call `orig` (-1: none) left `rax`. */
function registers(rip: bigint, orig: bigint, rax: bigint): BigInt64Array {
  const regs = new BigInt64Array(USER_REGS_SIZE / 8);
  regs.forEach((_, i) => regs[i] = BigInt(1000 + i)); // every other register recognisable
  regs[REG.rip] = rip, regs[REG.orig_rax] = orig, regs[REG.rax] = rax;
  return regs;
}

Deno.test("resumePoint: a system call the kernel would restart is issued again", () => {
  const codes = [...Object.values(RESTARTS), ERESTART_RESTARTBLOCK];
  for (const code of codes) {
    deepStrictEqual(resumePoint(registers(0x401002n, 7n, code)), {
      rip: 0x401002n - SYSCALL_INSN,
      rax: 7n, // the system call's number again, as the kernel restarts it
      restarts: true,
    }, String(code));
  }
});

Deno.test("resumePoint: a finished or interrupted system call, or none, continues where it was", () => {
  for (const [orig, rax] of [[7n, EINTR], [7n, 0n], [0n, 12n], [-1n, -512n], [-1n, 5n]]) {
    deepStrictEqual(
      resumePoint(registers(0x401002n, orig, rax)),
      { rip: 0x401002n, rax, restarts: false },
      `orig_rax ${orig}, rax ${rax}`,
    );
  }
});

// struct sigcontext_64, from uc_mcontext (the ucontext starts after the 8-byte return slot).
const MCONTEXT = 8 + 40;
const SIGCONTEXT: [keyof typeof REG, number][] = [
  ["r8", 0],
  ["r9", 8],
  ["r10", 16],
  ["r11", 24],
  ["r12", 32],
  ["r13", 40],
  ["r14", 48],
  ["r15", 56],
  ["rdi", 64],
  ["rsi", 72],
  ["rbp", 80],
  ["rbx", 88],
  ["rdx", 96],
  ["rcx", 112],
  ["rsp", 120],
  ["eflags", 136],
];
const RAX = 104, RIP = 128, CS = 144, SS = 150, FPSTATE = 184;

Deno.test("buildFrame: rt_sigreturn restores every register, at the resume point", () => {
  const regs = registers(0x401002n, 7n, RESTARTS.ERESTARTSYS);
  regs[REG.cs] = 0x33n, regs[REG.ss] = 0x2bn;
  const frame = buildFrame(regs, 0x7ffc0000n);
  strictEqual(frame.length, FRAME_SIZE);
  const v = new DataView(frame.buffer);
  for (const [name, offset] of SIGCONTEXT) {
    strictEqual(v.getBigInt64(MCONTEXT + offset, true), regs[REG[name]], name);
  }
  strictEqual(v.getBigInt64(MCONTEXT + RIP, true), 0x401000n, "rip: back on the syscall");
  strictEqual(v.getBigInt64(MCONTEXT + RAX, true), 7n, "rax: the system call's number");
  strictEqual(v.getUint16(MCONTEXT + CS, true), 0x33);
  strictEqual(v.getUint16(MCONTEXT + SS, true), 0x2b);
  strictEqual(v.getBigUint64(MCONTEXT + FPSTATE, true), 0x7ffc0000n);
});

Deno.test("trampolineEntry: the contract's inputs in their registers, the rest as saved", () => {
  const saved = registers(0x401002n, 7n, RESTARTS.ERESTARTSYS);
  const before = saved.slice();
  const input = {
    code: 0x7f0000001000n,
    stack: 0x7ffc0000f000n,
    table: 0x7ffc0000f040n,
    ucontext: 0x7ffc0000f088n,
    bootstrap: 0x7f0000001100n,
    direct: true,
  };
  const entry = trampolineEntry(saved, input);
  deepStrictEqual(saved, before, "the saved registers are left as they were");
  const set: [keyof typeof REG, bigint][] = [
    ["rip", input.code],
    ["rsp", input.stack],
    ["rbx", input.table],
    ["r12", input.ucontext],
    ["r13", input.bootstrap],
    ["r14", 1n],
    ["rax", 0n],
    ["orig_rax", -1n], // the kernel must not restart anything on the way in
  ];
  for (const [name, value] of set) strictEqual(entry[REG[name]], value, name);
  const others = Object.values(REG).filter((i) => !set.some(([name]) => REG[name] === i));
  for (const i of others) strictEqual(entry[i], saved[i], `register ${i}`);
  strictEqual(trampolineEntry(saved, { ...input, direct: false })[REG.r14], 0n);
});

Deno.test("TRAMPOLINE: keeps the signal mask where the frame has it, ends in rt_sigreturn", () => {
  // lea rdx,[r12+disp32] is the 4th instruction (bytes 9..16): the mask goes to uc_sigmask.
  deepStrictEqual([...TRAMPOLINE.subarray(9, 13)], [0x49, 0x8d, 0x94, 0x24]);
  strictEqual(new DataView(TRAMPOLINE.buffer).getUint32(13, true), UC_SIGMASK);
  deepStrictEqual([...TRAMPOLINE.subarray(-9)], [0xb8, 0x0f, 0, 0, 0, 0x0f, 0x05, 0x0f, 0x0b]);
});
