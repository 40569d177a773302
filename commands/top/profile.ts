// Counting remotely read samples as the agent's Sampler counts its own (snippet.py), so
// that `top` prints the same table, flame graph and summary whichever way it sampled.
import type { CodeInfo, ThreadSample } from "./remote.ts";

const MAX_STACKS = 20000;
const RUN_STATE_MS = 10;
const MAX_THREADS_TRACKED = 4096;
// The innermost function's name says a thread waits (the agent's `threads` library uses the
// same words), when its run state cannot tell a lock wait from a wait for the GIL.
const WAITING = /^_*(wait|acquire|accept|recv|read|select|poll)|^(get|join)$|sleep/;
// x86-64 system calls in which a thread sleeps: read, poll, select, pause, nanosleep, accept,
// recvfrom, recvmsg, wait4, rt_sigtimedwait, rt_sigsuspend, io_getevents, clock_nanosleep,
// epoll_wait, waitid, pselect6, ppoll, epoll_pwait, accept4, recvmmsg, epoll_pwait2.
const SLEEPING = new Set([
  0,
  7,
  23,
  34,
  35,
  43,
  45,
  47,
  61,
  128,
  130,
  208,
  230,
  232,
  247,
  270,
  271,
  281,
  288,
  299,
  441,
]);
const FUTEX = new Set([202, 449]); // a lock, a condition... or the GIL

/** What the agent tells the CLI every refresh (the `top_names` event). */
export class Names {
  threads = new Map<number, { name: string; native: number | null }>();
  hidden = new Set<number>();
  modules = new Map<string, string>();
  /** "file:firstline:co_name" -> qualified name (before 3.11, which has no co_qualname). */
  qualnames = new Map<string, string>();

  private hostTids: Map<number, number> | null = null;

  /** The target's native thread id as this process's /proc knows it (they differ when the
   * target runs in another PID namespace: NSpid lists the id in each, outermost first). */
  hostTid(pid: number, native: number): number | null {
    if (this.hostTids === null) {
      this.hostTids = new Map();
      try {
        for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
          const ns = /^NSpid:\s+(.*)$/m.exec(
            readProc(`/proc/${pid}/task/${task.name}/status`) ?? "",
          );
          const ids = ns ? ns[1].trim().split(/\s+/).map(Number) : [Number(task.name)];
          this.hostTids.set(ids[ids.length - 1], Number(task.name));
        }
      } catch {
        // the process is gone: no thread judged by its run state
      }
    }
    return this.hostTids.get(native) ?? null;
  }

  update(data: Record<string, unknown>): void {
    this.hostTids = null; // threads come and go: mapped again at the next use
    this.threads.clear();
    for (const [ident, name, native] of data.threads as [number, string, number | null][]) {
      this.threads.set(ident, { name, native });
    }
    this.hidden = new Set(data.hidden as number[]);
    for (const [file, module] of Object.entries(data.modules as Record<string, string>)) {
      if (!this.modules.has(file)) this.modules.set(file, module); // the first, as the agent
    }
    const quals = data.qualnames as Record<string, [number, string, string][]>;
    for (const [file, rows] of Object.entries(quals)) {
      for (const [line, name, qual] of rows) this.qualnames.set(`${file}:${line}:${name}`, qual);
    }
  }

  /** module.Class.method, as the agent's threads.code_name names a code object. */
  functionName(info: CodeInfo): string {
    const qual = info.qualname !== info.name
      ? info.qualname
      : this.qualnames.get(`${info.file}:${info.line}:${info.name}`) ?? info.name;
    const module = this.modules.get(info.file);
    return module ? `${module}.${qual}` : qual;
  }
}

export interface Row {
  function: string;
  file: string;
  line: number;
  own: number;
  total: number;
  own_pct: number;
  total_pct: number;
}

export class Profile {
  samples = 0;
  threadSamples = 0;
  idleSkipped = 0;
  stacksDropped = 0;
  private own = new Map<bigint, number>();
  private total = new Map<bigint, number>();
  private stacks = new Map<string, { thread: string; codes: bigint[]; count: number }>();
  private runStates: RunStates;
  private idleStacks = new Map<number, { frame: bigint; codes: bigint[] }>();
  /** When the last sample was added: run states are judged by it (one clock read a sample). */
  private now = 0;
  /** By the codes of a sample: the same array when the sampler kept it, or knownIdle gave it. */
  private verdicts = new WeakMap<bigint[], { at: number; idle: boolean }>();

  constructor(
    private pid: number,
    private names: Names,
    private info: (code: bigint) => CodeInfo | null,
    private idle: boolean,
  ) {
    this.runStates = new RunStates(pid);
  }

  add(threads: ThreadSample[]): void {
    this.samples++;
    this.now = performance.now();
    for (const t of threads) {
      if (t.asleep) this.idleSkipped++;
      if (t.asleep || this.names.hidden.has(t.ident) || t.codes.length === 0) continue;
      if (!this.idle && this.waits(t)) {
        this.idleSkipped++;
        this.rememberIdle(t.ident, t.frame, t.codes);
        continue;
      }
      this.idleStacks.delete(t.ident);
      this.count(t.ident, t.codes);
    }
  }

  private count(ident: number, codes: bigint[]): void {
    this.threadSamples++;
    this.own.set(codes[0], (this.own.get(codes[0]) ?? 0) + 1);
    for (const code of new Set(codes)) this.total.set(code, (this.total.get(code) ?? 0) + 1);
    const thread = this.names.threads.get(ident)?.name ?? `thread ${ident}`;
    const rooted = [...codes].reverse();
    const key = `${thread}\0${rooted.join(",")}`;
    const stack = this.stacks.get(key);
    if (stack) stack.count++;
    else if (this.stacks.size < MAX_STACKS) {
      this.stacks.set(key, { thread, codes: rooted, count: 1 });
    } else this.stacksDropped++;
  }

  /** Whether the OS says a thread sleeps in a system call that is never the GIL (its state at
   * most RUN_STATE_MS old, as `waits` judges it): it is idle whatever its stack, so the sampler
   * leaves it out unread. Never with --idle (then its stack is shown). */
  asleep(ident: number): boolean {
    if (this.idle) return false;
    const state = this.runState(ident);
    return state !== null && !state.running && SLEEPING.has(state.call);
  }

  /** An idle thread's stack from the last sample, while it has not run since (the same
   * innermost frame, and /proc does not say it runs): waiting threads are not walked again. */
  knownIdle(ident: number, frame: bigint): bigint[] | null {
    const known = this.idleStacks.get(ident);
    if (!known || known.frame !== frame || frame === 0n) return null;
    const state = this.runState(ident);
    return state && !state.running ? known.codes : null;
  }

  private rememberIdle(ident: number, frame: bigint, codes: bigint[]): void {
    if (this.idleStacks.get(ident)?.codes === codes) return; // the same sample, kept
    if (this.idleStacks.size >= MAX_THREADS_TRACKED) this.idleStacks.clear();
    this.idleStacks.set(ident, { frame, codes });
  }

  table(limit: number): Row[] {
    const n = Math.max(1, this.threadSamples);
    const pct = (x: number) => Math.round(1000 * x / n) / 10;
    const rows = [...this.total].map(([code, total]) => {
      const [name, file, line] = this.describe(code);
      const own = this.own.get(code) ?? 0;
      return { function: name, file, line, own, total, own_pct: pct(own), total_pct: pct(total) };
    });
    rows.sort((a, b) => b.own - a.own || b.total - a.total || (a.function < b.function ? -1 : 1));
    return rows.slice(0, limit);
  }

  collapsed(): [string, number][] {
    const out: [string, number][] = [...this.stacks.values()].map((s) => {
      const parts = [
        s.thread,
        ...s.codes.map((c) => this.describe(c)).map(([n, f, l]) => `${n} (${f}:${l})`),
      ];
      return [parts.map((p) => p.replaceAll(";", ",")).join(";"), s.count];
    });
    return out.sort((a, b) => b[1] - a[1]);
  }

  private describe(code: bigint): [string, string, number] {
    const info = this.info(code);
    return info ? [this.names.functionName(info), info.file, info.line] : ["?", "", 0];
  }

  /** Whether a thread waits rather than runs: its run state and system call from /proc, and
   * in a futex (a lock or the GIL) its innermost function; without a native id, that alone.
   * A stack kept from before (the thread has not run since, or waits where it waited) has the
   * same answer for as long as a run state is believed (RUN_STATE_MS): 50 waiting threads at
   * 5 kHz add up. */
  private waits(t: ThreadSample): boolean {
    const known = this.verdicts.get(t.codes);
    if (known && this.now - known.at < RUN_STATE_MS) return known.idle;
    const state = this.runState(t.ident);
    const name = this.info(t.codes[0])?.name ?? "";
    const idle = state === null ? WAITING.test(name) : !state.running &&
      (SLEEPING.has(state.call) || (FUTEX.has(state.call) && WAITING.test(name)));
    this.verdicts.set(t.codes, { at: this.now, idle });
    return idle;
  }

  private runState(ident: number): RunState | null {
    const own = this.names.threads.get(ident)?.native;
    const native = own ? this.names.hostTid(this.pid, own) : null;
    return native ? this.runStates.of(native, this.now) : null;
  }

  /** Closes the /proc files kept open for run states. */
  close(): void {
    this.runStates.close();
  }
}

/** Threads' run states from /proc, each read again only after RUN_STATE_MS and through files
 * kept open (read from the start again): at 1-10 kHz opening two files per thread per sample
 * cost more than the whole stack walk, and a state a few ms old still tells a sleeper from a
 * runner. `close()` when done. */
export class RunStates {
  private known = new Map<number, { at: number; state: RunState | null; files: TaskFiles }>();

  constructor(private pid: number, private maxAgeMs = RUN_STATE_MS) {}

  of(tid: number, now = performance.now()): RunState | null {
    let known = this.known.get(tid);
    // Each thread's state is kept a little longer or shorter than the next one's: read all at
    // once (the first sample, 50 threads), they would all be read again in one sample, ~1 ms
    // of /proc reads every 10 ms that cost a tick at 1 kHz.
    const maxAge = this.maxAgeMs * (1 + (tid % 8) / 8);
    if (known && now - known.at < maxAge) return known.state;
    if (!known) {
      if (this.known.size >= MAX_THREADS_TRACKED) this.close();
      const dir = `/proc/${this.pid}/task/${tid}`;
      known = {
        at: now,
        state: null,
        files: [new ProcFile(`${dir}/stat`), new ProcFile(`${dir}/syscall`)],
      };
      this.known.set(tid, known);
    }
    known.at = now;
    known.state = readState(known.files);
    return known.state;
  }

  close(): void {
    for (const { files } of this.known.values()) for (const f of files) f.close();
    this.known.clear();
  }
}

type TaskFiles = [stat: ProcFile, syscall: ProcFile];

function readState([stat, syscall]: TaskFiles): RunState | null {
  const line = stat.read();
  if (line === null) return null;
  if (line.slice(line.lastIndexOf(")") + 2)[0] === "R") return { running: true, call: -1 };
  return { running: false, call: Number((syscall.read() ?? "").split(" ")[0]) };
}

/** A /proc file opened once and read again from its start each time (null once it is gone). */
class ProcFile {
  private static buffer = new Uint8Array(1024);
  private static decoder = new TextDecoder();
  private file: Deno.FsFile | null | undefined;

  constructor(private path: string) {}

  read(): string | null {
    try {
      if (this.file === undefined) this.file = Deno.openSync(this.path);
      if (this.file === null) return null;
      this.file.seekSync(0, Deno.SeekMode.Start);
      const n = this.file.readSync(ProcFile.buffer);
      return n === null ? null : ProcFile.decoder.decode(ProcFile.buffer.subarray(0, n));
    } catch {
      this.close(); // the thread ended
      this.file = null;
      return null;
    }
  }

  close(): void {
    try {
      this.file?.close();
    } catch { /* closed */ }
  }
}

interface RunState {
  running: boolean;
  /** The system call it waits in (x86-64 number), or -1. */
  call: number;
}

function readProc(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}
