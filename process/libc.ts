// The few libc calls the native injector needs, reached through Deno's FFI.
// Every call here is synchronous, so it runs on the JS main thread: ptrace
// requires that the thread which seized a tracee is the one that drives it.

const lib = Deno.dlopen("libc.so.6", {
  ptrace: { parameters: ["i64", "i32", "u64", "u64"], result: "i64" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  process_vm_readv: {
    parameters: ["i32", "buffer", "u64", "buffer", "u64", "u64"],
    result: "i64",
  },
  process_vm_writev: {
    parameters: ["i32", "buffer", "u64", "buffer", "u64", "u64"],
    result: "i64",
  },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  geteuid: { parameters: [], result: "u32" },
  syscall: { parameters: ["i64", "i64", "i64", "i64", "i64", "i64"], result: "i64" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
});

export const PTRACE = {
  POKEDATA: 5,
  GETREGS: 12,
  SETREGS: 13,
  DETACH: 17,
  GETREGSET: 0x4204,
  SEIZE: 0x4206,
  INTERRUPT: 0x4207,
} as const;

export const NT_X86_XSTATE = 0x202;
export const WALL = 0x40000000;
export const ERRNO = { EPERM: 1, ESRCH: 3, EINTR: 4, EIO: 5, EACCES: 13, EFAULT: 14, EBUSY: 16 };

export class SysError extends Error {
  constructor(readonly call: string, readonly errno: number) {
    super(`${call}: ${strerror(errno)} (errno ${errno})`);
  }
}

export function errno(): number {
  const p = lib.symbols.__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

function strerror(code: number): string {
  const p = lib.symbols.strerror(code);
  return p ? Deno.UnsafePointerView.getCString(p) : `errno ${code}`;
}

/** ptrace(2); throws SysError when it fails. */
export function ptrace(req: number, tid: number, addr: bigint = 0n, data: bigint = 0n): bigint {
  const r = lib.symbols.ptrace(BigInt(req), tid, addr, data) as bigint;
  if (r === -1n) {
    const e = errno();
    if (e !== 0) throw new SysError(`ptrace(${req})`, e);
  }
  return r;
}

export function ptraceBuffer(req: number, tid: number, addr: bigint, buf: Uint8Array): void {
  ptrace(
    req,
    tid,
    addr,
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf as BufferSource))),
  );
}

/** Waits for a state change of one thread; returns the raw status word. */
export function waitThread(tid: number, nohang = false): number | null {
  const status = new Int32Array(1);
  for (;;) {
    const r = lib.symbols.waitpid(tid, new Uint8Array(status.buffer), WALL | (nohang ? 1 : 0));
    if (r === tid) return status[0];
    if (r === 0) return null;
    const e = errno();
    if (e === ERRNO.EINTR) continue;
    throw new SysError("waitpid", e);
  }
}

function iovec(addr: bigint, len: number): Uint8Array {
  const b = new BigUint64Array([addr, BigInt(len)]);
  return new Uint8Array(b.buffer);
}

/** Reads target memory; returns fewer bytes than asked only at an unmapped edge. */
export function readMemory(pid: number, addr: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  const local = iovec(
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(out as BufferSource))),
    len,
  );
  const r = Number(lib.symbols.process_vm_readv(pid, local, 1n, iovec(addr, len), 1n, 0n));
  if (r < 0) throw new SysError("process_vm_readv", errno());
  return out.subarray(0, r);
}

/** Many small reads of one process, as fast as FFI allows: the I/O vectors and a scratch
 * buffer are made once (building them per call tripled the cost of a read). Each read
 * returns a copy; null when not all of it is mapped. */
export class MemoryReader {
  private scratch = new Uint8Array(65536);
  private local = new BigUint64Array([
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.scratch as BufferSource))),
    0n,
  ]);
  private remote = new BigUint64Array(2);

  constructor(readonly pid: number) {}

  read(addr: bigint, len: number): Uint8Array | null {
    if (len > this.scratch.length) return null;
    this.local[1] = this.remote[1] = BigInt(len);
    this.remote[0] = addr;
    const r = Number(lib.symbols.process_vm_readv(this.pid, this.local, 1n, this.remote, 1n, 0n));
    return r === len ? this.scratch.slice(0, len) : null;
  }

  /** Several reads at once: entry i holds lens[i] bytes from addrs[i], or null when they could
   * not all be read. One process_vm_readv per IOV_MAX regions (it takes many remote vectors and
   * fills one local buffer in order): a system call each costs ~4 µs here, a vector ~1 µs (a
   * page pinned; reading regions merged into spans saved nothing: the pages are the cost). The
   * kernel stops at the first vector that fails, so the regions after one that is null are read
   * again one batch on. */
  readMany(addrs: readonly bigint[], lens: readonly number[]): (Uint8Array | null)[] {
    const out: (Uint8Array | null)[] = [];
    while (out.length < addrs.length) {
      const first = out.length;
      let total = 0, n = 0;
      while (
        first + n < addrs.length && n < IOV_MAX && total + lens[first + n] <= this.scratch.length
      ) {
        if (this.remote.length < 2 * (n + 1)) this.grow();
        this.remote[2 * n] = addrs[first + n];
        this.remote[2 * n + 1] = BigInt(lens[first + n]);
        total += lens[first + n++];
      }
      if (n === 0) { // larger than the scratch buffer
        out.push(null);
        continue;
      }
      this.local[1] = BigInt(total);
      const r = Number(
        lib.symbols.process_vm_readv(this.pid, this.local, 1n, this.remote, BigInt(n), 0n),
      );
      const bytes = this.scratch.slice(0, Math.max(0, r));
      let at = 0;
      for (let i = first; i < first + n && at + lens[i] <= bytes.length; i++) {
        out.push(bytes.subarray(at, at + lens[i]));
        at += lens[i];
      }
      if (out.length < first + n) out.push(null); // the one that failed; the next batch goes on
    }
    return out;
  }

  private grow(): void {
    const bigger = new BigUint64Array(Math.min(2 * IOV_MAX, Math.max(16, 2 * this.remote.length)));
    bigger.set(this.remote);
    this.remote = bigger;
  }
}

/** Linux's limit on the I/O vectors of one call. */
const IOV_MAX = 1024;

/** Writes writable target memory (stack, heap); not code pages. */
export function writeMemory(pid: number, addr: bigint, data: Uint8Array): void {
  const local = iovec(
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(data as BufferSource))),
    data.length,
  );
  const r = Number(lib.symbols.process_vm_writev(pid, local, 1n, iovec(addr, data.length), 1n, 0n));
  if (r < 0) throw new SysError("process_vm_writev", errno());
  if (r !== data.length) throw new SysError("process_vm_writev (short)", ERRNO.EFAULT);
}

/** A raw Linux system call (x86-64 numbers); returns -1 and sets errno on failure. */
export function syscall(nr: number, ...args: (number | bigint)[]): number {
  const a = [0, 1, 2, 3, 4].map((i) => BigInt(args[i] ?? 0));
  return Number(lib.symbols.syscall(BigInt(nr), a[0], a[1], a[2], a[3], a[4]));
}

export function signalProcess(pid: number, sig: number): boolean {
  return lib.symbols.kill(pid, sig) === 0;
}

export function effectiveUid(): number {
  return lib.symbols.geteuid();
}

// Decoding of waitpid status words.
export const stoppedSignal = (s: number) => ((s & 0xff) === 0x7f ? (s >> 8) & 0xff : 0);
export const ptraceEvent = (s: number) => (s >> 16) & 0xff;
export const exited = (s: number) => (s & 0x7f) === 0 || ((s & 0x7f) !== 0x7f && (s & 0x7f) !== 0);
