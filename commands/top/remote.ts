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
}

const STRUCT = 512; // bytes of a runtime, interpreter or thread state searched for a field
const FRAME = 128; // bytes of a frame searched
const MAX_THREADS = 4096;
const MAX_DEPTH = 128;
const MAX_CODES = 100000; // names remembered; beyond, read again
const MASK = ~7n;
const TRAMPOLINE = "<interpreter trampoline>";
const WINDOW = 4096;

const plausible = (p: bigint) => p > 0x10000n && p < 0x800000000000n && (p & 7n) === 0n;

export class RemoteStacks {
  private codes = new Map<bigint, CodeInfo>();
  private memory: MemoryReader;
  /** Reads done, for the cost report. */
  reads = 0;

  private constructor(
    readonly pid: number,
    private layout: Layout,
    private codeType: bigint,
    private str: { ascii: number; compact: number },
  ) {
    this.memory = new MemoryReader(pid);
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
  ): RemoteStacks {
    const { thread, frame, code, str } = shape.layout;
    const layout: Layout = {
      interp: shape.interp,
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
    return new RemoteStacks(pid, layout, shape.codeType, str);
  }

  /** One sample: each thread's ident, its current frame and its code objects, innermost
   * first (threads that `skip` names are listed without their stacks; `reuse` may give a
   * thread's codes for its current frame, known from before, so that it is not walked). */
  sample(
    skip: (ident: number) => boolean = () => false,
    reuse: (ident: number, frame: bigint) => bigint[] | null = () => null,
  ): ThreadSample[] {
    const L = this.layout;
    const out: ThreadSample[] = [];
    let t = this.ptr(L.interp, L.threadsHead);
    const size = Math.max(L.threadId, L.next, L.tstateFrame) + 8;
    const seen = new Set<bigint>(); // a list read while threads come and go may loop
    while (t && seen.size < MAX_THREADS && !seen.has(t)) {
      seen.add(t);
      const ts = this.read(t, size);
      if (!ts) break;
      const ident = Number(ts.getBigUint64(L.threadId, true));
      if (skip(ident)) out.push({ ident, frame: 0n, codes: [] });
      else {
        const frame = this.currentFrame(ts);
        out.push({ ident, frame, codes: reuse(ident, frame) ?? this.walk(frame) });
      }
      const next = ts.getBigUint64(L.next, true);
      t = plausible(next) ? next : null;
    }
    return out;
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

  /** The thread's innermost frame (0 when it runs none or the pointer is not plausible). */
  private currentFrame(ts: DataView): bigint {
    const L = this.layout;
    const f = ts.getBigUint64(L.tstateFrame, true);
    if (!plausible(f)) return 0n;
    return L.cframeCurrent === null ? f : this.ptr(f, L.cframeCurrent) ?? 0n;
  }

  private walk(from: bigint): bigint[] {
    const L = this.layout;
    const codes: bigint[] = [];
    let f = from;
    // 3.11+ keep a thread's frames on its own stack of memory, callers below callees: one
    // read of the page(s) below the current frame usually holds the whole walk.
    let window: { start: bigint; view: DataView } | null = null;
    const size = Math.max(L.back, L.code) + 8;
    // Bounded by frames visited, not codes kept: a torn read can make a cycle of frames
    // that hold no code object.
    for (let depth = 0; plausible(f) && depth < MAX_DEPTH; depth++) {
      let frame: DataView | null = null;
      if (window && f >= window.start && f + BigInt(size) <= window.start + BigInt(WINDOW)) {
        frame = new DataView(window.view.buffer, window.view.byteOffset + Number(f - window.start));
      } else if (L.stacked) {
        const start = f + BigInt(size) - BigInt(WINDOW);
        const view = this.read(start, WINDOW);
        if (view) {
          window = { start, view };
          frame = new DataView(view.buffer, view.byteOffset + WINDOW - size);
        }
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
