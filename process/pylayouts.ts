// Where CPython 3.8-3.15 keep what a stack reader needs, per minor version: offsets in the
// release builds' private structs (_PyRuntimeState, PyInterpreterState, PyThreadState, the
// frames, PyCodeObject, str), as the headers of each version lay them out on x86-64 Linux and
// as measured on the pyenv and Debian builds. 3.13+ targets also describe the first few in
// their own _Py_DebugOffsets, which override these (process/pystate.ts). Every value is
// checked against the target before a stack is shown (pystate.ts `verify`).

export type LineFormat = "lnotab" | "linetable310" | "locations";

export interface PyLayout {
  /** _PyRuntime.interpreters.head */
  interpretersHead: number;
  /** PyInterpreterState.threads.head (tstate_head before 3.11) */
  threadsHead: number;
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
    /** 3.14+: f_executable is a tagged stack reference. */
    tagged: boolean;
  };
  code: {
    filename: number;
    name: number;
    qualname: number | null;
    firstlineno: number;
    linetable: number;
    /** 3.11+: where the instructions start (co_code_adaptive). */
    instructions: number | null;
  };
  lines: LineFormat;
  str: { ascii: number; compact: number };
  /** The GIL's state: `_gil_runtime_state` inside _PyRuntime (3.8-3.11), or pointed to by the
   * interpreter (3.12+); in it, last_holder at +8 and locked at +16. */
  gil: { inRuntime: boolean; offset: number };
}

const FRAME_OBJECTS = { back: 24, code: 32, tagged: false };
const CODE_38 = {
  filename: 104,
  name: 112,
  qualname: null,
  firstlineno: 40,
  linetable: 120,
  instructions: null,
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
const code311 = (firstlineno: number, instructions: number) => ({
  filename: 112,
  name: 120,
  qualname: 128,
  firstlineno,
  linetable: 136,
  instructions,
});
const thread313 = (threadId: number) => ({
  next: 8,
  interp: 16,
  threadId,
  nativeThreadId: threadId + 8,
  frame: 72,
  cframeCurrent: null,
});
const frame313 = (tagged: boolean) => ({ back: 8, code: 0, position: 56, tagged });

export const PY_LAYOUTS: Readonly<Record<string, PyLayout>> = {
  "3.8": {
    interpretersHead: 32,
    threadsHead: 8,
    thread: THREAD_38,
    frame: { ...FRAME_OBJECTS, position: 104 },
    code: CODE_38,
    lines: "lnotab",
    str: STR_OLD,
    gil: { inRuntime: true, offset: 1152 },
  },
  "3.9": {
    interpretersHead: 32,
    threadsHead: 8,
    thread: THREAD_38,
    frame: { ...FRAME_OBJECTS, position: 104 },
    code: CODE_38,
    lines: "lnotab",
    str: STR_OLD,
    gil: { inRuntime: true, offset: 352 },
  },
  "3.10": {
    interpretersHead: 32,
    threadsHead: 8,
    thread: THREAD_38,
    frame: { ...FRAME_OBJECTS, position: 96 },
    code: CODE_38,
    lines: "linetable310",
    str: STR_OLD,
    gil: { inRuntime: true, offset: 352 },
  },
  "3.11": {
    interpretersHead: 40,
    threadsHead: 16,
    thread: {
      next: 8,
      interp: 16,
      threadId: 152,
      nativeThreadId: 160,
      frame: 56,
      cframeCurrent: 8,
    },
    frame: { back: 48, code: 32, position: 56, tagged: false },
    code: code311(72, 184),
    lines: "locations",
    str: STR_OLD,
    gil: { inRuntime: true, offset: 360 },
  },
  "3.12": {
    interpretersHead: 40,
    threadsHead: 72,
    thread: {
      next: 8,
      interp: 16,
      threadId: 136,
      nativeThreadId: 144,
      frame: 56,
      cframeCurrent: 0,
    },
    frame: { back: 8, code: 0, position: 56, tagged: false },
    code: code311(68, 192),
    lines: "locations",
    str: STR_NEW,
    gil: { inRuntime: false, offset: 384 },
  },
  "3.13": {
    interpretersHead: 632,
    threadsHead: 7344,
    thread: thread313(152),
    frame: frame313(false),
    code: code311(68, 200),
    lines: "locations",
    str: STR_NEW,
    gil: { inRuntime: false, offset: 16 },
  },
  "3.14": {
    interpretersHead: 808,
    threadsHead: 7344,
    thread: thread313(152),
    frame: frame313(true),
    code: code311(68, 208),
    lines: "locations",
    str: STR_NEW,
    gil: { inRuntime: false, offset: 16 },
  },
  "3.15": {
    interpretersHead: 936,
    threadsHead: 7336,
    thread: thread313(176),
    frame: frame313(true),
    code: code311(68, 208),
    lines: "locations",
    str: STR_NEW,
    gil: { inRuntime: false, offset: 16 },
  },
};
