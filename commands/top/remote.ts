// Reading every Python thread's stack from outside the target (process_vm_readv), as py-spy
// does: the target is neither stopped nor asked for its GIL, so sampling costs it nothing
// but the memory traffic. Nothing here is a table of CPython's private struct offsets (3.13+
// describe a few in _Py_DebugOffsets, read through process/debugoffsets.ts): the
// agent parks one of its threads in a known stack and describes it (in CPython an object's
// id() is its address), and `calibrate` finds each field the walk needs by matching those
// values in memory. A read that fails or a value that does not look right ends that
// thread's walk for that sample; nothing is ever written.
import { MemoryReader } from "../../process/libc.ts";
import { findInterpreter, symbolAddress } from "../../process/procfs.ts";
import { DEBUG_COOKIE, DEBUG_HEAD, DebugOffsets } from "../../process/debugoffsets.ts";
import type { PyLayout } from "../../process/pylayouts.ts";
import { type GilState, GilWatch } from "./gil.ts";

/** What the parked agent thread says about itself (see `probe()` in snippet.py). */
export interface Probe {
  version: [number, number];
  ident: number;
  idents: number[];
  /** Code objects innermost first: the wait the thread parks in, _park, run. */
  codes: number[];
  /** Frame objects of _park and run. */
  frames: number[];
  code_type: number;
  /** For those codes: ids of co_filename, co_name, co_qualname (0 before 3.11). */
  code_fields: { filename: number; name: number; qualname: number; firstlineno: number }[];
  str_sizes: { ascii: number; compact: number };
}

interface Layout {
  /** The probe's interpreter state (its address never changes). */
  interp: bigint;
  threadsHead: number;
  next: number;
  threadId: number;
  /** Offset in the thread state of the current frame, or of the C frame that points to it. */
  tstateFrame: number;
  /** 3.11/3.12: the offset of current_frame in that C frame; otherwise null. */
  cframeCurrent: number | null;
  back: number;
  code: number;
  /** 3.14+: f_executable is a tagged stack reference; its low bits are flags. */
  tagged: boolean;
  /** 3.11+: interpreter frames, kept on a per-thread stack (before: heap frame objects). */
  stacked: boolean;
  filename: number;
  name: number;
  qualname: number | null;
  firstlineno: number;
}

export interface CodeInfo {
  file: string;
  name: string;
  /** co_qualname (3.11+), else co_name. */
  qualname: string;
  line: number;
}

export class CalibrationError extends Error {}

export interface ThreadSample {
  ident: number;
  /** Its innermost frame's address (0 when not read). */
  frame: bigint;
  codes: bigint[];
  /** Left out unread: the OS said it sleeps (see Profile.asleep). */
  asleep?: boolean;
}

const STRUCT = 512; // bytes of a runtime, interpreter or thread state searched for a field
const FRAME = 128; // bytes of a frame searched
const MAX_THREADS = 4096;
const MAX_DEPTH = 128;
const MAX_CODES = 100000; // names remembered; beyond, read again
const MASK = ~7n;
const TRAMPOLINE = "<interpreter trampoline>";
const WINDOW = 4096;
const PAGE = 4096;
const GUESS_ABOVE = 512; // bytes above the holder's last frame read with it (calls deeper)
const LIST_MS = 10; // the list of threads is read whole at least this often

/** How a thread is sampled: left out (hidden: the agent's), asleep (the OS says so), or read. */
type Mode = "hidden" | "asleep" | "read";
const modeOf = (hidden: boolean, read: boolean): Mode =>
  hidden ? "hidden" : read ? "read" : "asleep";

/** Memory read from `start`. */
type Window = { start: bigint; view: DataView };

/** Whether a window of memory read holds the `size` bytes at `f`. */
const inside = (w: Window | null, f: bigint, size: number) =>
  w !== null && f >= w.start && f + BigInt(size) <= w.start + BigInt(w.view.byteLength);

const plausible = (p: bigint) => p > 0x10000n && p < 0x800000000000n && (p & 7n) === 0n;

export class RemoteStacks {
  private codes = new Map<bigint, CodeInfo>();
  private memory: MemoryReader;
  /** Where the GIL's holder and switch count are (with no agent: dump's layout has them). */
  private gil: GilWatch | null = null;
  /** Where the GIL holder's state and frames were at the last sample (see guesses). */
  private guess: { tstate: bigint; cframe: bigint; frame: bigint } | null = null;
  /** The last sample, for the threads that have not run since (see sinceLast). */
  private last: { gil: GilState; samples: ThreadSample[]; modes: Mode[] } | null = null;
  /** The thread states (in list order) and their threads' idents, when last read whole. */
  private threads: { at: number; addrs: bigint[]; idents: number[] } | null = null;
  private stateSize: number;
  /** Reads done, for the cost report. */
  reads = 0;
  /** Samples in which only the GIL's holder was read (no other thread had run since). */
  heldOnly = 0;

  private constructor(
    readonly pid: number,
    private layout: Layout,
    private codeType: bigint,
    private str: { ascii: number; compact: number },
  ) {
    this.memory = new MemoryReader(pid);
    this.stateSize = Math.max(layout.threadId, layout.next, layout.tstateFrame) + 8;
  }

  /** Finds the layout from the probe; throws CalibrationError saying what did not match. */
  static calibrate(pid: number, probe: Probe): RemoteStacks {
    const runtime = symbolAddress(findInterpreter(pid), "_PyRuntime");
    const c = new Calibrator(pid, probe);
    const layout = c.find(runtime);
    return new RemoteStacks(pid, layout, BigInt(probe.code_type), probe.str_sizes);
  }

  /** With no agent: the layout `peeka dump` reads with (process/pystate.ts), which its reader
   * has verified against the target. */
  static fromLayout(
    pid: number,
    minor: number,
    shape: { layout: PyLayout; interp: bigint; codeType: bigint },
    watchGil = true,
  ): RemoteStacks {
    const { thread, frame, code, str } = shape.layout;
    const runtime = symbolAddress(findInterpreter(pid), "_PyRuntime");
    const layout: Layout = {
      interp: shape.interp, // the main interpreter (the reader walks them all)
      threadsHead: shape.layout.threadsHead,
      next: thread.next,
      threadId: thread.threadId,
      tstateFrame: thread.frame,
      cframeCurrent: thread.cframeCurrent,
      back: frame.back,
      code: frame.code,
      tagged: frame.tagged,
      stacked: minor >= 11,
      filename: code.filename,
      name: code.name,
      qualname: code.qualname,
      firstlineno: code.firstlineno,
    };
    const stacks = new RemoteStacks(pid, layout, shape.codeType, str);
    if (watchGil) stacks.gil = GilWatch.locate(stacks.memory, shape.layout, runtime, layout.interp);
    return stacks;
  }

  /** The GIL's state now, and as read with the last sample (null without a GIL watch): what
   * `sample` relies on, for a check to compare. */
  gilNow(): GilState | null {
    return this.gil?.read() ?? null;
  }
  get gilAtLastSample(): GilState | null {
    return this.last?.gil ?? null;
  }

  /** The interpreter whose threads are sampled. */
  get interp(): bigint {
    return this.layout.interp;
  }

  /** One sample: each thread's ident, its current frame and its code objects, innermost
   * first (threads that `skip` names are listed without their stacks; `reuse` may give a
   * thread's codes for its current frame, known from before, so that it is not walked). */
  sample(
    skip: (ident: number) => boolean = () => false,
    reuse: (ident: number, frame: bigint) => bigint[] | null = () => null,
    asleep: (ident: number) => boolean = () => false,
  ): ThreadSample[] {
    if (this.gil) this.reads++;
    const gil = this.gil?.read(this.guesses()) ?? null;
    const kept = gil && this.sinceLast(gil, skip, reuse, asleep);
    if (kept) return kept;
    const { idents, states } = this.threadStates(skip, asleep);
    const frames = this.currentFrames(states);
    const modes = idents.map((ident, i) => modeOf(skip(ident), states[i] !== null));
    const samples = idents.map((ident, i) => this.threadSample(ident, modes[i], frames[i], reuse));
    this.last = gil && { gil, samples, modes };
    return samples;
  }

  /** The last sample again with only the GIL holder's stack read anew, when no other thread
   * has held the GIL since (gil.ts) and no thread is hidden, asleep or read where it was not
   * before; null otherwise. The list is still read whole at most LIST_MS apart. */
  private sinceLast(
    gil: GilState,
    skip: (ident: number) => boolean,
    reuse: (ident: number, frame: bigint) => bigint[] | null,
    asleep: (ident: number) => boolean,
  ): ThreadSample[] | null {
    const last = this.last, list = this.threads;
    if (!last || !list || performance.now() - list.at >= LIST_MS) return null;
    const before = last.gil;
    if (gil.switches !== before.switches || gil.head !== before.head) return null;
    if (gil.holder !== before.holder) return null;
    // A holder not in the list (a subinterpreter's thread state, one just deleted) may be an
    // OS thread that has swapped in one of the list's thread states: everything is read.
    const holder = list.addrs.indexOf(gil.holder);
    if (holder < 0) return null;
    // A thread read before is kept even if it sleeps now (its stack is what was read); one
    // hidden or asleep before must still be, or it is read.
    const modes = last.modes;
    const changed = (m: Mode, i: number) =>
      m === "hidden" ? !skip(list.idents[i]) : skip(list.idents[i]) ||
        (m === "asleep" && !asleep(list.idents[i]));
    if (modes.some((m, i) => i !== holder && changed(m, i))) return null;
    const samples = [...last.samples];
    const ident = list.idents[holder];
    const mode = modeOf(skip(ident), !skip(ident) && !asleep(ident));
    if (mode === "read") {
      const held = this.holderSample(gil, ident, reuse);
      if (!held) return null;
      samples[holder] = held;
    } else samples[holder] = this.threadSample(ident, mode, 0n, reuse);
    this.last = { gil, samples, modes: modes.with(holder, mode) };
    this.heldOnly++;
    return samples;
  }

  /** The regions the holder's sample will likely need, read with the GIL's state in one call:
   * its thread state, (3.11/3.12) its C frame's current frame, and the memory below its last
   * innermost frame (3.11+), where it last was. Each is checked before it is used. */
  private guesses(): [bigint, number][] {
    const g = this.guess, L = this.layout;
    if (!g) return [];
    const out: [bigint, number][] = [[g.tstate, this.stateSize]];
    if (L.cframeCurrent !== null && g.cframe) out.push([g.cframe + BigInt(L.cframeCurrent), 8]);
    const below = this.guessedWindow();
    if (below) out.push(below);
    return out;
  }

  /** Below the holder's last innermost frame (3.11+), not under the start of its page: its
   * first frames sit at the start of a stack chunk, with nothing mapped below. */
  private guessedWindow(): [bigint, number] | null {
    const f = this.guess?.frame;
    if (!this.layout.stacked || !f) return null;
    const end = f + BigInt(GUESS_ABOVE);
    const floor = f & ~BigInt(PAGE - 1);
    const start = end - BigInt(WINDOW) > floor ? end - BigInt(WINDOW) : floor;
    return [start, Number(end - start)];
  }

  /** The GIL holder's sample, from the regions guessed where they proved right; null when its
   * state no longer names the thread (it ended, another took its place). */
  private holderSample(
    gil: GilState,
    ident: number,
    reuse: (ident: number, frame: bigint) => bigint[] | null,
  ): ThreadSample | null {
    const L = this.layout, g = this.guess;
    const view = (b: Uint8Array | null | undefined) =>
      b ? new DataView(b.buffer, b.byteOffset, b.byteLength) : null;
    const hit = g?.tstate === gil.holder;
    let state = hit ? view(gil.extra[0]) : null;
    if (!state) state = this.readStates([gil.holder])?.[1] ?? null;
    if (!state || Number(state.getBigUint64(L.threadId, true)) !== ident) return null;
    const cframe = L.cframeCurrent === null ? 0n : state.getBigUint64(L.tstateFrame, true);
    const current = hit && cframe && cframe === g!.cframe ? view(gil.extra[1]) : null;
    let frame = current?.getBigUint64(0, true) ?? this.currentFrames([state])[0];
    if (!plausible(frame)) frame = 0n;
    const guessed = hit ? this.guessedWindow() : null;
    const below = guessed && view(gil.extra.at(-1));
    const window = below && { start: guessed![0], view: below };
    this.guess = { tstate: gil.holder, cframe, frame };
    return { ident, frame, codes: reuse(ident, frame) ?? this.walk(frame, window) };
  }

  private threadSample(
    ident: number,
    mode: Mode,
    frame: bigint,
    reuse: (ident: number, frame: bigint) => bigint[] | null,
  ): ThreadSample {
    if (mode !== "read") return { ident, frame: 0n, codes: [], asleep: mode === "asleep" };
    return { ident, frame, codes: reuse(ident, frame) ?? this.walk(frame) };
  }

  /** Every thread's ident, and the state (the bytes up to the fields read) of those to walk:
   * not skipped, not asleep. The list of thread states is read whole (all in one call, checked
   * to link up as before, else walked one by one) at most LIST_MS apart; in between, only the
   * head and the states to walk are read, and any change (a thread started, a state reused by
   * another thread) reads it whole again. A thread that ended since is asleep by then (its
   * /proc entry is gone) or its state no longer names it. */
  private threadStates(
    skip: (ident: number) => boolean,
    asleep: (ident: number) => boolean,
  ): { idents: number[]; states: (DataView | null)[] } {
    const list = this.threads;
    const now = performance.now();
    if (list && now - list.at < LIST_MS) {
      const wanted = list.idents.flatMap((ident, i) => (skip(ident) || asleep(ident) ? [] : [i]));
      const views = this.readStates(wanted.map((i) => list.addrs[i]));
      const same = views &&
        wanted.every((i, k) =>
          Number(views[k + 1].getBigUint64(this.layout.threadId, true)) === list.idents[i]
        );
      if (same && views[0].getBigUint64(0, true) === (list.addrs[0] ?? 0n)) {
        const states: (DataView | null)[] = list.idents.map(() => null);
        wanted.forEach((i, k) => (states[i] = views[k + 1]));
        return { idents: list.idents, states };
      }
    }
    const all = this.wholeList();
    const idents = all.states.map((ts) => Number(ts.getBigUint64(this.layout.threadId, true)));
    this.threads = { at: now, addrs: all.addrs, idents };
    const walked = (i: number) => !skip(idents[i]) && !asleep(idents[i]);
    return { idents, states: all.states.map((ts, i) => (walked(i) ? ts : null)) };
  }

  /** The list's head pointer, then the states at `addrs`, read in one call; null if any failed. */
  private readStates(addrs: bigint[]): DataView[] | null {
    const L = this.layout;
    this.reads++;
    const got = this.memory.readMany(
      [L.interp + BigInt(L.threadsHead), ...addrs],
      [8, ...addrs.map(() => this.stateSize)],
    );
    if (got.some((b) => b === null)) return null;
    return got.map((b) => new DataView(b!.buffer, b!.byteOffset, b!.byteLength));
  }

  /** Every thread state: the last list's addresses read at once and kept if they link up as
   * before, else the list walked state by state. */
  private wholeList(): { addrs: bigint[]; states: DataView[] } {
    const L = this.layout;
    const addrs = this.threads?.addrs ?? [];
    const views = addrs.length ? this.readStates(addrs) : null;
    const linked = views?.every((v, i) =>
      v.getBigUint64(i === 0 ? 0 : L.next, true) === (addrs[i] ?? 0n)
    );
    if (views && linked) return { addrs, states: views.slice(1) };
    const walked: bigint[] = [], states: DataView[] = [];
    let t = this.ptr(L.interp, L.threadsHead);
    const seen = new Set<bigint>(); // a list read while threads come and go may loop
    while (t && seen.size < MAX_THREADS && !seen.has(t)) {
      seen.add(t);
      const ts = this.read(t, this.stateSize);
      if (!ts) break;
      states.push(ts);
      walked.push(t);
      const next = ts.getBigUint64(L.next, true);
      t = plausible(next) ? next : null;
    }
    return { addrs: walked, states };
  }

  /** Each read thread's innermost frame (0 when it runs none or the pointer is not
   * plausible). 3.11/3.12 keep it in a C frame, one more read per thread: done in one call. */
  private currentFrames(states: (DataView | null)[]): bigint[] {
    const L = this.layout;
    const direct = states.map((ts) => {
      const f = ts ? ts.getBigUint64(L.tstateFrame, true) : 0n;
      return plausible(f) ? f : 0n;
    });
    if (L.cframeCurrent === null) return direct;
    const at = direct.flatMap((f, i) => (f ? [i] : []));
    if (!at.length) return direct;
    this.reads++;
    const got = this.memory.readMany(
      at.map((i) => direct[i] + BigInt(L.cframeCurrent!)),
      at.map(() => 8),
    );
    const frames = direct.map(() => 0n);
    at.forEach((i, k) => {
      const b = got[k];
      const f = b ? new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true) : 0n;
      frames[i] = plausible(f) ? f : 0n;
    });
    return frames;
  }

  /** Name, file and first line of a code object (read once), or null if it is not one. A
   * torn walk can point anywhere, so "not a code object" is not remembered. */
  codeInfo(addr: bigint): CodeInfo | null {
    const known = this.codes.get(addr);
    if (known) return known;
    let info: CodeInfo | null = null;
    const L = this.layout;
    const v = this.read(addr, Math.max(L.filename, L.name, L.qualname ?? 0, L.firstlineno) + 8);
    if (v && v.getBigUint64(8, true) === this.codeType) {
      const name = this.text(v.getBigUint64(L.name, true));
      const file = this.text(v.getBigUint64(L.filename, true));
      const qual = L.qualname === null ? name : this.text(v.getBigUint64(L.qualname, true));
      if (name !== null && file !== null) {
        info = { file, name, qualname: qual ?? name, line: v.getInt32(L.firstlineno, true) };
      }
    }
    if (info) {
      if (this.codes.size >= MAX_CODES) this.codes.clear();
      this.codes.set(addr, info);
    }
    return info;
  }

  /** The code objects from a frame outwards; `window`: memory already read that may hold some. */
  private walk(from: bigint, window: Window | null = null): bigint[] {
    const L = this.layout;
    const codes: bigint[] = [];
    let f = from;
    // 3.11+ keep a thread's frames on its own stack of memory, callers below callees: one
    // read of the page(s) below the current frame usually holds the whole walk.
    const size = Math.max(L.back, L.code) + 8;
    // Bounded by frames visited, not codes kept: a torn read can make a cycle of frames
    // that hold no code object.
    for (let depth = 0; plausible(f) && depth < MAX_DEPTH; depth++) {
      let frame: DataView | null = null;
      if (!inside(window, f, size) && L.stacked) window = this.window(f, size);
      if (inside(window, f, size)) {
        frame = new DataView(
          window!.view.buffer,
          window!.view.byteOffset + Number(f - window!.start),
        );
      }
      frame ??= this.read(f, size);
      if (!frame) break;
      let code = frame.getBigUint64(L.code, true);
      if (L.tagged) code &= MASK;
      // Frames that run no Python code (3.12's C-stack entry frames, whose code is the
      // "<interpreter trampoline>"; 3.13+'s have no code object) are passed over.
      const info = plausible(code) ? this.codeInfo(code) : null;
      if (info && info.name !== TRAMPOLINE) codes.push(code);
      f = frame.getBigUint64(L.back, true);
    }
    return codes;
  }

  /** The memory below a stacked frame, up to its end: WINDOW bytes or, when those reach into
   * an unmapped page (a thread's first frames sit at the start of its stack chunk), from the
   * start of the frame's own page. */
  private window(f: bigint, size: number): Window | null {
    const end = f + BigInt(size);
    for (const start of [end - BigInt(WINDOW), f & ~BigInt(PAGE - 1)]) {
      const view = this.read(start, Number(end - start));
      if (view) return { start, view };
    }
    return null;
  }

  private text(addr: bigint): string | null {
    if (!plausible(addr)) return null;
    const head = this.read(addr, 40);
    if (!head) return null;
    const length = Number(head.getBigInt64(16, true));
    const state = head.getUint32(32, true);
    const kind = (state >> 2) & 7, compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
    if (!compact || length < 0 || length > 4096 || ![1, 2, 4].includes(kind)) return null;
    const data = this.read(addr + BigInt(ascii ? this.str.ascii : this.str.compact), length * kind);
    if (!data) return null;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (kind === 1) return ascii ? new TextDecoder().decode(bytes) : String.fromCharCode(...bytes);
    const units: number[] = [];
    for (let i = 0; i < length; i++) {
      const unit = kind === 2 ? data.getUint16(2 * i, true) : data.getUint32(4 * i, true);
      if (unit > 0x10ffff) return null; // not a string: a torn read
      units.push(unit);
    }
    return String.fromCodePoint(...units);
  }

  private ptr(addr: bigint, off: number): bigint | null {
    const v = this.read(addr + BigInt(off), 8);
    const p = v?.getBigUint64(0, true);
    return p !== undefined && plausible(p) ? p : null;
  }

  private read(addr: bigint, len: number): DataView | null {
    this.reads++;
    const b = this.memory.read(addr, len);
    return b && new DataView(b.buffer);
  }
}

/** Finds each offset by the values the probe promises are there. */
class Calibrator {
  private codes: bigint[];
  private frames: bigint[];
  private idents: Set<bigint>;

  private memory: MemoryReader;

  constructor(pid: number, private probe: Probe) {
    this.memory = new MemoryReader(pid);
    this.codes = probe.codes.map(BigInt);
    this.frames = probe.frames.map(BigInt);
    this.idents = new Set(probe.idents.map(BigInt));
  }

  find(runtime: bigint): Layout {
    const { list, ...threads } = this.threadList(runtime);
    const mine = list.find((t) => this.u64(t, threads.threadId) === BigInt(this.probe.ident));
    if (mine === undefined) throw new CalibrationError("the agent's thread is not in the list");
    const frame = this.probe.version[1] <= 10 ? this.objectFrames(mine) : this.interpFrames(mine);
    return { ...threads, ...frame, ...this.codeFields() };
  }

  /** runtime -> interpreter -> first thread state -> next..., checked by the thread idents.
   * 3.13+ say where the links between them are (_Py_DebugOffsets at the runtime's start);
   * before, they are searched for. The interpreter is kept by address (it never moves), so
   * one the target creates later changes nothing; the list holding every probe ident wins. */
  private threadList(runtime: bigint) {
    const bytes = this.memory.read(runtime, DEBUG_HEAD.end);
    const debug = bytes && new DebugOffsets(bytes);
    let interps: bigint[];
    let heads: (interp: bigint) => [number, bigint][];
    if (debug?.cookie === DEBUG_COOKIE) {
      const [headAt, nextAt, threadsAt] = [
        DEBUG_HEAD.runtime.interpretersHead,
        DEBUG_HEAD.interp.next,
        DEBUG_HEAD.interp.threadsHead,
      ].map((field) => Number(debug.value(field)));
      interps = [];
      for (let i = this.u64(runtime, headAt); i && plausible(i) && interps.length < 64;) {
        interps.push(i);
        i = this.u64(i, nextAt);
      }
      heads = (interp) => {
        const p = this.u64(interp, threadsAt);
        return p !== null && plausible(p) ? [[threadsAt, p]] : [];
      };
    } else {
      interps = this.pointers(runtime, 256).map(([, p]) => p);
      heads = (interp) => this.pointers(interp, 256);
    }
    let best: { interp: bigint; threadsHead: number; next: number; threadId: number } | null = null;
    let bestList: bigint[] = [], bestKnown = 0;
    for (const interp of interps) {
      for (const [threadsHead, head] of heads(interp)) {
        const hv = this.view(head, STRUCT);
        if (!hv) continue;
        for (let threadId = 0; threadId + 8 <= STRUCT; threadId += 8) {
          if (!this.idents.has(hv.getBigUint64(threadId, true))) continue;
          for (const [next] of this.pointers(head, 256)) {
            const found = this.follow(head, next, threadId);
            if (!found || found.known <= bestKnown) continue;
            best = { interp, threadsHead, next, threadId };
            [bestList, bestKnown] = [found.list, found.known];
            if (bestKnown === this.idents.size) return { ...best, list: bestList };
          }
        }
      }
    }
    if (!best) throw new CalibrationError("no list of thread states holding the agent's threads");
    return { ...best, list: bestList };
  }

  /** The list from `head` by `next`, if it ends, holds the probe's thread and mostly known
   * idents (threads may have started or ended since the probe, or run no Python). */
  private follow(head: bigint, next: number, threadId: number) {
    const list: bigint[] = [];
    let known = 0, mine = false;
    for (let t: bigint | null = head; t !== 0n; t = this.u64(t, next)) {
      if (t === null || list.length >= MAX_THREADS) return null;
      const ident = this.u64(t, threadId);
      if (ident === null) return null;
      if (this.idents.has(ident)) known++;
      if (ident === BigInt(this.probe.ident)) mine = true;
      list.push(t);
    }
    return mine && known >= 2 && known * 2 > list.length ? { list, known } : null;
  }

  /** 3.8-3.10: the thread state points to a frame object: f_back, f_code. */
  private objectFrames(tstate: bigint) {
    const [wait, park] = this.codes;
    for (const [tstateFrame, f] of this.pointers(tstate, STRUCT)) {
      const back = this.offsetOf(f, FRAME, this.frames[0]);
      const code = this.offsetOf(f, FRAME, wait);
      if (back === null || code === null) continue;
      if (this.u64(this.frames[0], code) !== park) continue;
      if (this.u64(this.frames[0], back) !== this.frames[1]) continue;
      return { tstateFrame, cframeCurrent: null, back, code, tagged: false, stacked: false };
    }
    throw new CalibrationError("no frame object holding the parked stack");
  }

  /** 3.11+: frame objects point (f_frame) to interpreter frames: previous, f_code/f_executable. */
  private interpFrames(tstate: bigint) {
    const [wait, park] = this.codes;
    const tagged = this.probe.version[1] >= 14;
    const same = (v: bigint | null, code: bigint) => v !== null && (tagged ? v & MASK : v) === code;
    // _park's interpreter frame: a pointer in its frame object to a struct holding its code.
    for (const [, parkFrame] of this.pointers(this.frames[0], FRAME)) {
      const pv = this.view(parkFrame, FRAME);
      if (!pv) continue;
      for (let code = 0; code + 8 <= FRAME; code += 8) {
        if (!same(pv.getBigUint64(code, true), park)) continue;
        // The current frame (the wait): straight from the thread state, or through a C frame.
        for (const [tstateFrame, x] of this.pointers(tstate, STRUCT)) {
          const via: [bigint, number | null][] = [[x, null]];
          for (const [cframeCurrent, y] of this.pointers(x, 32)) via.push([y, cframeCurrent]);
          for (const [current, cframeCurrent] of via) {
            if (!same(this.u64(current, code), wait)) continue;
            const back = this.offsetOf(current, FRAME, parkFrame);
            if (back !== null) {
              return { tstateFrame, cframeCurrent, back, code, tagged, stacked: true };
            }
          }
        }
      }
    }
    throw new CalibrationError("no interpreter frame holding the parked stack");
  }

  /** co_filename, co_name, co_qualname and co_firstlineno, the same in _park's and run's
   * code; co_qualname from the wait's (a method: its qualified name is not its name). */
  private codeFields() {
    const [wait, park, run] = this.codes;
    const [wf, pf, rf] = this.probe.code_fields;
    const both = (field: "filename" | "name") => {
      const off = this.offsetOf(park, 256, BigInt(pf[field]));
      return off !== null && this.u64(run, off) === BigInt(rf[field]) ? off : null;
    };
    const filename = both("filename"), name = both("name");
    const qualname = wf.qualname ? this.offsetOf(wait, 256, BigInt(wf.qualname)) : null;
    const pv = this.view(park, 256), rv = this.view(run, 256);
    let firstlineno: number | null = null;
    for (let off = 16; pv && rv && off + 4 <= 256 && firstlineno === null; off += 4) {
      if (pv.getInt32(off, true) === pf.firstlineno && rv.getInt32(off, true) === rf.firstlineno) {
        firstlineno = off;
      }
    }
    if (filename === null || name === null || firstlineno === null || (wf.qualname && !qualname)) {
      throw new CalibrationError("code object fields not found");
    }
    return { filename, name, qualname, firstlineno };
  }

  /** Every plausible pointer in the first `len` bytes at addr, with its offset. */
  private pointers(addr: bigint, len: number): [number, bigint][] {
    const v = this.view(addr, len);
    const out: [number, bigint][] = [];
    for (let off = 0; v && off + 8 <= len; off += 8) {
      const p = v.getBigUint64(off, true);
      if (plausible(p)) out.push([off, p]);
    }
    return out;
  }

  private offsetOf(addr: bigint, len: number, value: bigint): number | null {
    const v = this.view(addr, len);
    for (let off = 0; v && off + 8 <= len; off += 8) {
      if (v.getBigUint64(off, true) === value) return off;
    }
    return null;
  }

  private u64(addr: bigint, off: number): bigint | null {
    return this.view(addr + BigInt(off), 8)?.getBigUint64(0, true) ?? null;
  }

  private view(addr: bigint, len: number): DataView | null {
    const b = this.memory.read(addr, len);
    return b && new DataView(b.buffer);
  }
}
