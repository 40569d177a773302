// Every Python thread's stack, read from outside the target with no agent (process_vm_readv):
// _PyRuntime (an exported symbol) -> every interpreter (the main one and the subinterpreters
// a process made: mod_wsgi's, `_interpreters`') -> their thread states -> each one's frames ->
// their code objects (and, when asked, each frame's local variables, rendered by
// process/pyobjects.ts without running target code). The offsets are peeka's for 3.8-3.12 (process/pylayouts.ts)
// and the target's own _Py_DebugOffsets on 3.13+; either way every object read is checked
// (ob_type of code, str and bytes objects, thread states pointing back to the interpreter,
// instruction pointers inside their code, thread ids that are the process's) and a layout
// that does not check out is refused with LAYOUT_UNVERIFIED: a wrong stack is worse than none.
// Nothing is ever written. Reusable by any reader from outside (`top` may adopt it).
import { MemoryReader } from "./libc.ts";
import { findInterpreter, type Interpreter, NotPythonError } from "./procfs.ts";
import { DEBUG_COOKIE, DEBUG_HEAD, DebugOffsets } from "./debugoffsets.ts";
import { DEBUG_FIELDS, DEBUG_FIELDS_SIZE } from "./debugfields.ts";
import { PeekaError } from "./errors.ts";
import { layoutFromDebugOffsets, PY_LAYOUTS, type PyLayout } from "./pylayouts.ts";
import { lineFrom310, lineFromLnotab, lineFromLocations } from "./linetable.ts";
import { ObjectReader, type ObjectSymbols, plausible } from "./pyobjects.ts";

/** One local variable of a frame: its name, short repr and type name (null: unreadable). */
export interface PyLocal {
  name: string;
  repr: string;
  type: string | null;
}

export interface PyFrame {
  function: string;
  /** co_qualname (3.11+), else the function's name. */
  qualname: string;
  file: string;
  line: number | null;
  /** With `read({ locals: true })`: the frame's bound local variables, or null with a note
   * saying why they could not be read. */
  locals?: PyLocal[] | null;
  localsNote?: string;
}

export interface PyThread {
  /** threading.get_ident() of the thread (its pthread_t). */
  threadId: number;
  /** The OS thread id (as /proc/PID/task lists it), null when it could not be read. */
  nativeId: number | null;
  /** Innermost frame first; null when the thread changed too fast to read (see `--blocking`). */
  stack: PyFrame[] | null;
  holdsGil: boolean;
  /** The id of the interpreter the thread state belongs to (0: the main interpreter). One OS
   * thread has a thread state in each interpreter it has run code in. */
  interpreterId: number;
  mainInterpreter: boolean;
}

/** A GIL as read: whether it is locked, and by which thread (its ident, and the id of the
 * interpreter whose thread state holds it). */
export interface PyGil {
  locked: boolean;
  holder: number | null;
  holderInterpreter: number | null;
}

export interface PyInterpreter {
  id: number;
  main: boolean;
  /** Whether it has a GIL of its own (3.12+ isolated subinterpreters); false when it uses the
   * main interpreter's (always before 3.12). */
  ownGil: boolean;
  /** The GIL it uses; null when it could not be read (an interpreter being made or deleted). */
  gil: PyGil | null;
}

export interface PyStacks {
  version: string;
  /** The main interpreter's threads first, then each subinterpreter's (by id). */
  threads: PyThread[];
  /** The main interpreter's GIL. */
  gil: PyGil;
  /** Every interpreter, the main one first, then by id. */
  interpreters: PyInterpreter[];
  /** Whether the OS thread ids come from the thread states (3.11+), so that one that is not a
   * thread of the process means a wrong layout; before, they come from glibc's pthread struct,
   * which another C library (musl) lays out differently: then they are only missing. */
  nativeIdsFromState: boolean;
}

const MAX_THREADS = 4096;
/** More subinterpreters than this is a list that does not end (mod_wsgi makes one per app). */
const MAX_INTERPRETERS = 1024;
const MAX_DEPTH = 1024;
const MAX_TABLE = 1 << 16;
const MAX_TEXT = 4096;
const MAX_LOCALS = 512;
/** 3.11+ co_localspluskinds: CO_FAST_LOCAL, CO_FAST_CELL or CO_FAST_FREE, one of which
 * every slot with a name is (the low bits vary by version). */
const CO_FAST_NAMED = 0xe0;
const TRIES = 3;
/** glibc x86-64: where struct pthread (at pthread_t) keeps the kernel's thread id. */
const PTHREAD_TID = 0x2d0;
const MASK = ~7n;
/** 3.14+ stack references: the low two bits tag a reference (1) or an int kept inline (3). */
const STACKREF_TAG = 3n;
const TRAMPOLINE = "<interpreter trampoline>";

function unverified(pid: number, what: string): PeekaError {
  return new PeekaError(
    "LAYOUT_UNVERIFIED",
    `process ${pid}: the Python structures do not match what peeka expects (${what}); ` +
      "no stack is shown rather than a wrong one (a custom or debug build?)",
  );
}

/** A thread's frame chain changed under the reader: read it again. */
class Torn extends Error {}

/** A subinterpreter did not read as one (made or deleted while read): read them all again. */
class SubinterpreterTorn extends Error {}

/** An interpreter found in the list: its address and id. */
interface InterpAt {
  addr: bigint;
  id: number;
}

/** A thread state read, with what the GIL check needs. */
type ThreadAt = PyThread & { tstate: bigint };

/** A code object's names, first line and (3.11+) length in code units. */
type CodeInfo = PyFrame & { firstLine: number; units: number };

/** The names of a code's localsplus slots, or why they could not be read. */
type SlotNames = { names: string[] } | { note: string };

/** The addresses in the target of what the reader compares with: _PyRuntime and the types
 * whose objects it reads (an object is only believed when its ob_type is the right one). */
interface Symbols {
  runtime: bigint;
  codeType: bigint;
  strType: bigint;
  bytesType: bigint;
  none: bigint;
  /** What the renderer of locals compares with; null when the build does not export it all. */
  objects: ObjectSymbols | null;
}

function symbolsOf(pid: number, python: Interpreter): Symbols {
  const find = (name: string) => {
    const v = python.elf.symbols.get(name);
    return v === undefined ? null : BigInt(python.loadBias + v);
  };
  const at = (name: string) => {
    const v = find(name);
    if (v === null) throw unverified(pid, `${python.path} does not export ${name}`);
    return v;
  };
  const base = {
    runtime: at("_PyRuntime"),
    codeType: at("PyCode_Type"),
    strType: at("PyUnicode_Type"),
    bytesType: at("PyBytes_Type"),
    none: at("_Py_NoneStruct"),
  };
  const rest = {
    true: find("_Py_TrueStruct"),
    false: find("_Py_FalseStruct"),
    type: find("PyType_Type"),
    int: find("PyLong_Type"),
    float: find("PyFloat_Type"),
    list: find("PyList_Type"),
    tuple: find("PyTuple_Type"),
    dict: find("PyDict_Type"),
    cell: find("PyCell_Type"),
  };
  const complete = Object.values(rest).every((v) => v !== null);
  const objects = complete
    ? { ...rest, none: base.none, str: base.strType, bytes: base.bytesType } as ObjectSymbols
    : null;
  return { ...base, objects };
}

export class PyStateReader {
  private memory: MemoryReader;
  /** Code objects already read (one reader reads one moment of the process). */
  private codes = new Map<bigint, CodeInfo | null>();
  private slotNames = new Map<bigint, SlotNames>();
  /** The main interpreter (id 0): what `top` samples. */
  private readonly main: bigint;
  private objects: ObjectReader;
  private withLocals = false;

  private constructor(
    readonly pid: number,
    readonly version: string,
    private layout: PyLayout,
    private sym: Symbols,
  ) {
    this.memory = new MemoryReader(pid);
    // Without every type to compare with, only str and bytes are read (names, line tables).
    const objects = sym.objects ?? { none: sym.none, str: sym.strType, bytes: sym.bytesType };
    this.objects = new ObjectReader(this.memory, objects as ObjectSymbols, {
      ...layout.objects,
      str: layout.str,
      bytesData: layout.bytesData,
    });
    const main = this.interpreters().find((i) => i.id === 0);
    if (!main) throw unverified(pid, "no main interpreter (id 0) in the list of interpreters");
    this.main = main.addr;
  }

  /** interpreters.head -> next -> ...: newest first, the main interpreter last. A list that
   * loops, runs long or names an id twice is a wrong layout (or, `fail` may say, one that
   * changed while read). */
  private interpreters(fail = (what: string): Error => unverified(this.pid, what)): InterpAt[] {
    const L = this.layout.interp;
    const found: InterpAt[] = [];
    const ids = new Set<number>();
    let at = this.u64(this.sym.runtime + BigInt(this.layout.interpretersHead));
    while (at) {
      if (!plausible(at) || found.length >= MAX_INTERPRETERS || found.some((i) => i.addr === at)) {
        throw fail("the list of interpreters does not read as one");
      }
      const id = this.u64(at + BigInt(L.id));
      if (id === null || id >= 1n << 31n || ids.has(Number(id))) {
        throw fail("an interpreter's id does not read as one");
      }
      ids.add(Number(id));
      found.push({ addr: at, id: Number(id) });
      at = this.u64(at + BigInt(L.next));
    }
    if (!found.length) throw fail("no interpreter in _PyRuntime");
    return found;
  }

  /** Opens a process: its interpreter, version and layout; throws a PeekaError saying why not. */
  static open(pid: number): PyStateReader {
    let python: Interpreter;
    try {
      python = findInterpreter(pid);
    } catch (e) {
      if (e instanceof NotPythonError) throw new PeekaError("NOT_PYTHON", e.message);
      throw e;
    }
    const v = python.version ? `${python.version.major}.${python.version.minor}` : "?";
    const sym = symbolsOf(pid, python);
    const layout = PY_LAYOUTS[v] ?? PyStateReader.debugLayout(pid, v, sym.runtime);
    if (!layout) {
      throw new PeekaError(
        "UNSUPPORTED_VERSION",
        `process ${pid} runs Python ${v}; peeka dump reads CPython 3.8 to 3.15`,
      );
    }
    return new PyStateReader(pid, v, layout, sym);
  }

  /** 3.13+: the layout the target describes in its _Py_DebugOffsets. */
  private static debugLayout(pid: number, version: string, runtime: bigint): PyLayout | null {
    const fields = DEBUG_FIELDS[version];
    if (!fields) return null;
    const bytes = new MemoryReader(pid).read(runtime, DEBUG_FIELDS_SIZE);
    const debug = bytes && new DebugOffsets(bytes);
    if (debug?.cookie !== DEBUG_COOKIE || debug.version !== version) {
      throw unverified(pid, "no _Py_DebugOffsets of this version at _PyRuntime");
    }
    const value = (position: number) => Number(debug.value(position));
    const heads = {
      interpretersHead: value(DEBUG_HEAD.runtime.interpretersHead),
      threadsHead: value(DEBUG_HEAD.interp.threadsHead),
      interp: { next: value(DEBUG_HEAD.interp.next), id: value(DEBUG_HEAD.interp.id) },
    };
    return layoutFromDebugOffsets(Number(version.split(".")[1]), heads, fields, value);
  }

  /** The layout and addresses this reader uses, for a sampler that walks the same structures
   * many times a second (`top` with no agent); meant after a `read()` has verified them. */
  get shape(): { layout: PyLayout; interp: bigint; codeType: bigint } {
    return { layout: this.layout, interp: this.main, codeType: this.sym.codeType };
  }

  /** One read of every interpreter's threads; a thread whose frames changed while read is
   * tried again, and so is the whole read when a subinterpreter came or went meanwhile.
   * `locals`: each frame's local variables too. */
  read(options: { locals?: boolean } = {}): PyStacks {
    this.withLocals = Boolean(options.locals);
    for (let i = 1;; i++) {
      try {
        return this.readAll();
      } catch (e) {
        if (!(e instanceof SubinterpreterTorn)) throw e;
        if (i >= TRIES) throw unverified(this.pid, e.message);
      }
    }
  }

  private readAll(): PyStacks {
    // The main interpreter (id 0) first, then the subinterpreters by id.
    const torn = (what: string) => new SubinterpreterTorn(what);
    const interps = this.interpreters(torn).sort((a, b) => a.id - b.id);
    if (interps[0].addr !== this.main) {
      throw torn("the main interpreter left the list");
    }
    const threads = interps.flatMap((i) => this.threadsOf(i));
    // One thread may move too fast to read; all of them failing is a layout that is wrong.
    if (threads.every((t) => t.stack === null)) {
      throw unverified(this.pid, "no thread's frames read as code objects");
    }
    const byState = new Map(threads.map((t) => [t.tstate, t]));
    const mainState = this.gilState(this.main);
    if (mainState === null) throw unverified(this.pid, "no GIL state");
    const mainGil = this.gil(mainState, byState);
    if (!mainGil) throw unverified(this.pid, "the GIL state does not read as one");
    const held = new Set<bigint | null>([mainGil.holderState]);
    const interpreters = interps.map((i): PyInterpreter => {
      const state = i.addr === this.main ? mainState : this.gilState(i.addr);
      const read = state === mainState ? mainGil : state === null ? null : this.gil(state, byState);
      if (state !== null && !read) {
        throw new SubinterpreterTorn(`subinterpreter ${i.id}: its GIL does not read as one`);
      }
      held.add(read?.holderState ?? null);
      const main = i.addr === this.main;
      return { id: i.id, main, ownGil: state !== mainState, gil: read?.gil ?? null };
    });
    for (const thread of threads) thread.holdsGil = held.has(thread.tstate);
    const nativeIdsFromState = this.layout.thread.nativeThreadId !== null;
    return {
      version: this.version,
      threads: threads.map(({ tstate: _, ...thread }) => thread),
      gil: mainGil.gil,
      interpreters,
      nativeIdsFromState,
    };
  }

  /** An interpreter's thread states, each checked to point back to it. */
  private threadsOf(interp: InterpAt): ThreadAt[] {
    const L = this.layout;
    const isMain = interp.addr === this.main;
    const bad = (what: string) =>
      isMain
        ? unverified(this.pid, what)
        : new SubinterpreterTorn(`subinterpreter ${interp.id}: ${what}`);
    const threads: ThreadAt[] = [];
    const seen = new Set<bigint>();
    for (let t = this.ptr(interp.addr + BigInt(L.threadsHead)); t !== null;) {
      if (seen.has(t) || seen.size >= MAX_THREADS) throw bad("thread list loops");
      seen.add(t);
      if (this.ptr(t + BigInt(L.thread.interp)) !== interp.addr) {
        throw bad("a thread state does not point back to its interpreter");
      }
      threads.push({
        ...this.thread(t),
        interpreterId: interp.id,
        mainInterpreter: isMain,
        tstate: t,
      });
      const next = this.u64(t + BigInt(L.thread.next));
      t = next !== null && plausible(next) ? next : null;
    }
    if (isMain && !threads.length) throw bad("the main interpreter has no thread");
    return threads;
  }

  private thread(tstate: bigint): Omit<PyThread, "interpreterId" | "mainInterpreter"> {
    const L = this.layout.thread;
    const threadId = this.u64(tstate + BigInt(L.threadId)) ?? 0n;
    const native = L.nativeThreadId !== null
      ? this.u64(tstate + BigInt(L.nativeThreadId))
      : this.u32(threadId + BigInt(PTHREAD_TID));
    let stack: PyFrame[] | null = null;
    for (let i = 0; i < TRIES && stack === null; i++) {
      try {
        stack = this.stack(tstate);
      } catch (e) {
        if (!(e instanceof Torn)) throw e;
      }
    }
    return {
      threadId: Number(threadId),
      nativeId: native ? Number(native) : null,
      stack,
      holdsGil: false,
    };
  }

  private stack(tstate: bigint): PyFrame[] {
    const L = this.layout;
    let f = this.u64(tstate + BigInt(L.thread.frame)) ?? 0n;
    if (L.thread.cframeCurrent !== null && f) {
      f = this.u64(f + BigInt(L.thread.cframeCurrent)) ?? 0n;
    }
    const frames: PyFrame[] = [];
    for (let depth = 0; f !== 0n; depth++) {
      if (!plausible(f) || depth >= MAX_DEPTH) throw new Torn();
      const size = Math.max(L.frame.back, L.frame.code, L.frame.position) + 8;
      const view = this.view(f, size);
      if (!view) throw new Torn();
      let code = view.getBigUint64(L.frame.code, true);
      if (L.frame.tagged) code &= MASK;
      const frame = this.frame(code, view);
      if (frame && this.withLocals) this.addLocals(frame, f, code);
      if (frame && frame.function !== TRAMPOLINE) frames.push(frame);
      f = view.getBigUint64(L.frame.back, true);
    }
    return frames;
  }

  /** The frame's function and line; null for a frame that runs no Python (3.13+'s C-stack
   * entry frames hold None); a code that is not a code object means the chain moved. */
  private frame(code: bigint, view: DataView): PyFrame | null {
    if (code === this.sym.none) return null;
    const info = this.codeInfo(code);
    if (!info) throw new Torn();
    const L = this.layout;
    const table = this.bytes(this.u64(code + BigInt(L.code.linetable)));
    if (!table) throw new Torn();
    let line: number | null;
    if (L.lines === "locations") {
      const at = view.getBigUint64(L.frame.position, true);
      const index = Math.floor(Number(at - (code + BigInt(L.code.instructions!))) / 2);
      // -1: a frame that has not run its first instruction (3.11/3.12).
      if (index < -1 || index >= info.units) throw new Torn();
      line = lineFromLocations(table, info.firstLine, index);
    } else {
      const lasti = view.getInt32(L.frame.position, true);
      line = L.lines === "lnotab"
        ? lineFromLnotab(table, info.firstLine, lasti)
        : lineFrom310(table, info.firstLine, lasti);
    }
    return { function: info.function, qualname: info.qualname, file: info.file, line };
  }

  /** Names of a code object, read once (code objects are immutable). */
  private codeInfo(code: bigint): CodeInfo | null {
    if (!this.codes.has(code)) this.codes.set(code, this.readCode(code));
    return this.codes.get(code)!;
  }

  private readCode(code: bigint): CodeInfo | null {
    if (!plausible(code) || this.u64(code + 8n) !== this.sym.codeType) return null;
    const L = this.layout.code;
    const view = this.view(code, Math.max(L.filename, L.name, L.qualname ?? 0, L.firstlineno) + 8);
    if (!view) return null;
    const fn = this.text(view.getBigUint64(L.name, true));
    const file = this.text(view.getBigUint64(L.filename, true));
    const qual = L.qualname === null ? fn : this.text(view.getBigUint64(L.qualname, true));
    const firstLine = view.getInt32(L.firstlineno, true);
    if (fn === null || file === null || qual === null || firstLine < 0) return null;
    // 3.11+ code objects are variable-size: ob_size counts their code units.
    const units = Number(view.getBigInt64(16, true));
    return { function: fn, qualname: qual, file, line: null, firstLine, units };
  }

  /** The frame's bound locals (unbound slots are left out), or a note saying why none. */
  private addLocals(frame: PyFrame, f: bigint, code: bigint): void {
    const locals = this.localsOf(f, code);
    if (typeof locals === "string") Object.assign(frame, { locals: null, localsNote: locals });
    else frame.locals = locals;
  }

  private localsOf(f: bigint, code: bigint): PyLocal[] | string {
    if (!this.sym.objects) return "this build does not export the types to check values against";
    const slots = this.slotNamesOf(code);
    if ("note" in slots) return slots.note;
    const count = slots.names.length;
    const data = count
      ? this.memory.read(f + BigInt(this.layout.frame.localsplus), count * 8)
      : new Uint8Array(0);
    if (!data) return "the frame's variables could not be read (the thread moved on?)";
    const dv = new DataView(data.buffer);
    const locals: PyLocal[] = [];
    slots.names.forEach((name, i) => {
      let value = dv.getBigUint64(8 * i, true);
      if (this.layout.frame.tagged) {
        if ((value & STACKREF_TAG) === STACKREF_TAG) {
          locals.push({ name, repr: String(BigInt.asIntN(64, value) >> 2n), type: "int" });
          return;
        }
        value &= ~STACKREF_TAG;
      }
      if (value !== 0n) locals.push({ name, ...this.objects.render(value) });
    });
    return locals;
  }

  /** The names of a code's localsplus slots, read once per code object. */
  private slotNamesOf(code: bigint): SlotNames {
    let names = this.slotNames.get(code);
    if (!names) this.slotNames.set(code, names = this.readSlotNames(code));
    return names;
  }

  private readSlotNames(code: bigint): SlotNames {
    const N = this.layout.code.locals;
    const tuple = (offset: number) => {
      const addr = this.u64(code + BigInt(offset));
      const items = addr === null ? null : this.objects.tupleItems(addr, MAX_LOCALS);
      const names = items?.map((item) => this.objects.text(item, 256)?.text ?? null);
      return names && names.every((n) => n !== null) ? names as string[] : null;
    };
    const bad = {
      note: `the variable names of this code do not read as expected (Python ${this.version})`,
    };
    if (N.kind === "varnames") {
      const parts = [tuple(N.varnames), tuple(N.cellvars), tuple(N.freevars)];
      if (parts.some((p) => p === null)) return bad;
      return { names: parts.flat() as string[] };
    }
    const names = tuple(N.names);
    const kinds = this.bytes(this.u64(code + BigInt(N.kinds)));
    // One kind byte per name: a check that both were read from the code object they name.
    if (
      !names || !kinds || kinds.length !== names.length ||
      kinds.some((k) => !(k & CO_FAST_NAMED))
    ) return bad;
    return { names };
  }

  /** Where the GIL an interpreter uses is (its `_gil_runtime_state`); null when it does not
   * read. The main interpreter's own GIL must be where the layout says (3.12+). */
  private gilState(interp: bigint): bigint | null {
    const G = this.layout.gil;
    if (G.in === "runtime") return this.sym.runtime + BigInt(G.offset);
    if (G.in === "interp") return interp + BigInt(G.offset);
    const state = this.ptr(interp + BigInt(G.offset));
    if (interp === this.main && G.own !== null && state !== interp + BigInt(G.own)) {
      throw unverified(this.pid, "the main interpreter's GIL is not its own");
    }
    return state;
  }

  /** Which thread holds a GIL: its last holder, while it is locked (and the holder's thread
   * state); null when the state does not read as a GIL. */
  private gil(
    state: bigint,
    threads: Map<bigint, PyThread>,
  ): { gil: PyGil; holderState: bigint | null } | null {
    const G = this.layout.gil;
    const holder = this.u64(state + BigInt(G.holder));
    const locked = this.view(state + BigInt(G.locked), 4)?.getInt32(0, true);
    if (holder === null || locked === undefined || (locked !== 0 && locked !== 1)) return null;
    const thread = locked === 1 ? threads.get(holder) : undefined;
    const gil = {
      locked: locked === 1,
      holder: thread?.threadId ?? null,
      holderInterpreter: thread?.interpreterId ?? null,
    };
    return { gil, holderState: thread ? holder : null };
  }

  /** A whole str (a name or a file), bounded. */
  private text(addr: bigint): string | null {
    const s = this.objects.text(addr, MAX_TEXT);
    return s && s.length === s.text.length ? s.text : null;
  }

  /** The contents of a bytes object (a line table, the kinds of locals), bounded. */
  private bytes(addr: bigint | null): Uint8Array | null {
    const b = addr === null ? null : this.objects.bytes(addr, MAX_TABLE);
    return b && b.size === b.data.length ? b.data : null;
  }

  private ptr(addr: bigint): bigint | null {
    const p = this.u64(addr);
    return p !== null && plausible(p) ? p : null;
  }

  private u64(addr: bigint): bigint | null {
    return this.view(addr, 8)?.getBigUint64(0, true) ?? null;
  }

  private u32(addr: bigint): number | null {
    return plausible(addr & MASK) ? this.view(addr, 4)?.getUint32(0, true) ?? null : null;
  }

  private view(addr: bigint, len: number): DataView | null {
    const b = this.memory.read(addr, len);
    return b && new DataView(b.buffer);
  }
}
