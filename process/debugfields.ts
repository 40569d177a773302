// Where, inside the target's `_Py_DebugOffsets` (3.13+), the offsets a stack reader needs
// are kept, per minor version: the struct gains fields between versions, so the place of
// each moves (Include/internal/pycore_runtime.h in 3.13, pycore_debug_offsets.h since 3.14;
// the places checked on the pyenv 3.13 and Debian 3.14/3.15 builds). process/debugoffsets.ts
// has the head every version shares; the values are always the target's own.

export interface DebugFields {
  thread: {
    next: number;
    interp: number;
    currentFrame: number;
    threadId: number;
    nativeThreadId: number;
  };
  frame: { previous: number; executable: number; instrPtr: number };
  code: {
    filename: number;
    name: number;
    qualname: number;
    linetable: number;
    firstlineno: number;
    codeAdaptive: number;
  };
  /** interpreter_state.gil_runtime_state_locked / _holder: the interpreter's own GIL. */
  gil: { locked: number; holder: number };
  bytesData: number;
  asciiSize: number;
}

export const DEBUG_FIELDS: Readonly<Record<string, DebugFields>> = {
  "3.13": {
    thread: { next: 168, interp: 176, currentFrame: 184, threadId: 192, nativeThreadId: 200 },
    frame: { previous: 232, executable: 240, instrPtr: 248 },
    code: {
      filename: 280,
      name: 288,
      qualname: 296,
      linetable: 304,
      firstlineno: 312,
      codeAdaptive: 344,
    },
    gil: { locked: 136, holder: 144 },
    bytesData: 528,
    asciiSize: 560,
  },
  "3.14": {
    thread: { next: 192, interp: 200, currentFrame: 208, threadId: 216, nativeThreadId: 224 },
    frame: { previous: 256, executable: 264, instrPtr: 272 },
    code: {
      filename: 320,
      name: 328,
      qualname: 336,
      linetable: 344,
      firstlineno: 352,
      codeAdaptive: 384,
    },
    gil: { locked: 144, holder: 152 },
    bytesData: 608,
    asciiSize: 640,
  },
  "3.15": {
    thread: { next: 192, interp: 200, currentFrame: 208, threadId: 240, nativeThreadId: 248 },
    frame: { previous: 320, executable: 328, instrPtr: 336 },
    code: {
      filename: 384,
      name: 392,
      qualname: 400,
      linetable: 408,
      firstlineno: 416,
      codeAdaptive: 448,
    },
    gil: { locked: 144, holder: 152 },
    bytesData: 704,
    asciiSize: 736,
  },
};

/** Bytes of the struct to read to reach every field above. */
export const DEBUG_FIELDS_SIZE = 744;
