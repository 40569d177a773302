// Where CPython keeps what a stack reader needs. 3.8-3.12 have no description of their own
// private structs, so peeka carries it: offsets in the release builds' _PyRuntimeState,
// PyInterpreterState, PyThreadState, frames, PyCodeObject and str, as each version's headers
// lay them out on x86-64 Linux: `deno run -A tools/pylayouts.ts` compiles tools/pylayouts.c
// against each interpreter's installed headers and compares every offset here with offsetof
// (all match for 3.8.18, 3.9.18, 3.10.13, 3.11.7, 3.12.1; py-spy's bindgen structs
// src/python_bindings/v3_*.rs list the same fields in the same order). 3.13+ describe them in
// _Py_DebugOffsets, and their layout is built from the target's own values
// (`layoutFromDebugOffsets`). Either way the reader checks them against the target before a
// stack is shown (process/pystate.ts).
import type { DebugFields } from "./debugfields.ts";
import { OBJECT_OFFSETS_38, type ObjectOffsets } from "./pyobjects.ts";

export type LineFormat = "lnotab" | "linetable310" | "locations";

/** How a code object names the slots of its frame's localsplus (`dump --locals`). */
export type LocalsNames =
  /** 3.8-3.10: co_varnames, then co_cellvars, then co_freevars. */
  | { kind: "varnames"; varnames: number; cellvars: number; freevars: number }
  /** 3.11+: co_localsplusnames, and co_localspluskinds (one kind byte per name). */
  | { kind: "localsplus"; names: number; kinds: number };

export interface PyLayout {
  /** _PyRuntime.interpreters.head */
  interpretersHead: number;
  /** PyInterpreterState.threads.head (tstate_head before 3.11) */
  threadsHead: number;
  /** PyInterpreterState.next (the list runs newest first, ending at the main interpreter) and
   * .id (0: the main interpreter). */
  interp: { next: number; id: number };
  thread: {
    next: number;
    interp: number;
    threadId: number;
    /** 3.11+; before, the OS thread id is read from glibc's pthread struct. */
    nativeThreadId: number | null;
    /** The current frame (3.8-3.10: a frame object; 3.13+: an interpreter frame), or the
     * _PyCFrame that points to it (3.11/3.12, see cframeCurrent). */
    frame: number;
    cframeCurrent: number | null;
  };
  frame: {
    back: number;
    code: number;
    /** 3.8-3.10: f_lasti (an int); 3.11+: prev_instr / instr_ptr (a pointer into the code). */
    position: number;
    /** 3.14+: f_executable and the locals are tagged stack references. */
    tagged: boolean;
    /** Where the frame's local variables start (f_localsplus / localsplus). */
    localsplus: number;
  };
  code: {
    filename: number;
    name: number;
    qualname: number | null;
    firstlineno: number;
    linetable: number;
    /** 3.11+: where the instructions start (co_code_adaptive). */
    instructions: number | null;
    locals: LocalsNames;
  };
  lines: LineFormat;
  str: { ascii: number; compact: number };
  /** Where a bytes object's data starts. */
  bytesData: number;
  /** The fields of the objects `dump --locals` renders. */
  objects: ObjectOffsets;
  /** The GIL's `_gil_runtime_state`: inside _PyRuntime (3.8-3.11: one for every
   * interpreter), or pointed to by each interpreter (3.12+: `ceval.gil`, its own `_gil` or the
   * main interpreter's); `holder` and `locked` are last_holder's and locked's offsets in it.
   * `own`: where an interpreter keeps a GIL of its own (3.12+ `_gil`), which the main
   * interpreter's pointer must name (a check of the layout). */
  gil: {
    in: "runtime" | "interp" | "interp-pointer";
    offset: number;
    holder: number;
    locked: number;
    own: number | null;
  };
}

const FRAME_OBJECTS = { back: 24, code: 32, tagged: false };
/** Offsets below: tools/pylayouts.c prints them from each version's headers
 * (Include/frameobject.h or cpython/frameobject.h, internal/pycore_frame.h, cpython/code.h,
 * internal/pycore_interp.h, pycore_runtime.h, pycore_gil.h); `deno run -A tools/pylayouts.ts`
 * compares. */
const VARNAMES_38 = { kind: "varnames" as const, varnames: 72, cellvars: 88, freevars: 80 };
const LOCALSPLUS_311 = { kind: "localsplus" as const, names: 96, kinds: 104 };
const CODE_38 = {
  filename: 104,
  name: 112,
  qualname: null,
  firstlineno: 40,
  linetable: 120,
  instructions: null,
  locals: VARNAMES_38,
};
const STR_OLD = { ascii: 48, compact: 72 };
const STR_NEW = { ascii: 40, compact: 56 };
const THREAD_38 = {
  next: 8,
  interp: 16,
  threadId: 176,
  nativeThreadId: null,
  frame: 24,
  cframeCurrent: null,
};
/** 3.11/3.12: the current frame is cframe->current_frame (cframe at 56). */
const thread311 = (threadId: number, cframeCurrent: number) => ({
  next: 8,
  interp: 16,
  threadId,
  nativeThreadId: threadId + 8,
  frame: 56,
  cframeCurrent,
});
const code311 = (firstlineno: number, instructions: number) => ({
  filename: 112,
  name: 120,
  qualname: 128,
  firstlineno,
  linetable: 136,
  instructions,
  locals: LOCALSPLUS_311,
});

/** 3.12: where an interpreter keeps a GIL of its own (`_gil`; ceval.gil points there). */
const OWN_GIL_312 = 1040;
/** 3.9/3.10: the interpreter's id moved after its list of thread states. */
const INTERP_39 = { next: 0, id: 24 };

const LAYOUT_38: PyLayout = {
  interpretersHead: 32,
  threadsHead: 8,
  interp: { next: 0, id: 16 },
  thread: THREAD_38,
  frame: { ...FRAME_OBJECTS, position: 104, localsplus: 360 },
  code: CODE_38,
  lines: "lnotab",
  str: STR_OLD,
  bytesData: 32,
  objects: OBJECT_OFFSETS_38,
  gil: { in: "runtime", offset: 1152, holder: 8, locked: 16, own: null },
};

export const PY_LAYOUTS: Readonly<Record<string, PyLayout>> = {
  "3.8": LAYOUT_38,
  "3.9": { ...LAYOUT_38, interp: INTERP_39, gil: { ...LAYOUT_38.gil, offset: 352 } },
  // 3.10: f_lasti moved (f_stackdepth replaced f_stacktop) and counts instructions.
  "3.10": {
    ...LAYOUT_38,
    interp: INTERP_39,
    frame: { ...FRAME_OBJECTS, position: 96, localsplus: 352 },
    lines: "linetable310",
    gil: { ...LAYOUT_38.gil, offset: 352 },
  },
  "3.11": {
    interpretersHead: 40,
    threadsHead: 16,
    interp: { next: 0, id: 48 },
    thread: thread311(152, 8),
    frame: { back: 48, code: 32, position: 56, tagged: false, localsplus: 72 },
    code: code311(72, 184),
    lines: "locations",
    str: STR_OLD,
    bytesData: 32,
    objects: OBJECT_OFFSETS_38,
    gil: { in: "runtime", offset: 360, holder: 8, locked: 16, own: null },
  },
  "3.12": {
    interpretersHead: 40,
    threadsHead: 72,
    interp: { next: 0, id: 8 },
    thread: thread311(136, 0),
    frame: { back: 8, code: 0, position: 56, tagged: false, localsplus: 72 },
    code: code311(68, 192),
    lines: "locations",
    str: STR_NEW,
    bytesData: 32,
    // 3.12: an int's sign and digit count in lv_tag (Include/cpython/longintrepr.h)
    objects: { ...OBJECT_OFFSETS_38, longTag: true },
    gil: { in: "interp-pointer", offset: 384, holder: 8, locked: 16, own: OWN_GIL_312 },
  },
};

/** A 3.13+ layout from the values of the target's _Py_DebugOffsets (`value(position)`), read
 * at the places `fields` gives for its version. */
export function layoutFromDebugOffsets(
  minor: number,
  heads: { interpretersHead: number; threadsHead: number; interp: PyLayout["interp"] },
  fields: DebugFields,
  value: (position: number) => number,
): PyLayout {
  const ascii = value(fields.asciiSize);
  const state = value(fields.gil.state);
  return {
    ...heads,
    thread: {
      next: value(fields.thread.next),
      interp: value(fields.thread.interp),
      threadId: value(fields.thread.threadId),
      nativeThreadId: value(fields.thread.nativeThreadId),
      frame: value(fields.thread.currentFrame),
      cframeCurrent: null,
    },
    frame: {
      back: value(fields.frame.previous),
      code: value(fields.frame.executable),
      position: value(fields.frame.instrPtr),
      tagged: minor >= 14, // _PyStackRef since 3.14: the low bits are flags
      localsplus: value(fields.frame.localsplus),
    },
    code: {
      filename: value(fields.code.filename),
      name: value(fields.code.name),
      qualname: value(fields.code.qualname),
      firstlineno: value(fields.code.firstlineno),
      linetable: value(fields.code.linetable),
      instructions: value(fields.code.codeAdaptive),
      locals: {
        kind: "localsplus",
        names: value(fields.code.localsplusNames),
        kinds: value(fields.code.localsplusKinds),
      },
    },
    lines: "locations",
    // PyCompactUnicodeObject: the ASCII header, then utf8_length and utf8.
    str: { ascii, compact: ascii + 16 },
    bytesData: value(fields.bytesData),
    objects: {
      obType: value(fields.objects.obType),
      tpName: value(fields.objects.tpName),
      varSize: value(fields.objects.tupleSize),
      tupleItems: value(fields.objects.tupleItems),
      floatValue: value(fields.objects.floatValue),
      longSize: value(fields.objects.longTag),
      longTag: true,
      longDigits: value(fields.objects.longDigits),
    },
    gil: {
      // ceval.gil names the GIL the interpreter uses: its own _gil, or the main's (shared)
      in: "interp-pointer",
      offset: value(fields.gil.cevalGil),
      holder: value(fields.gil.holder) - state,
      locked: value(fields.gil.locked) - state,
      own: state,
    },
  };
}
