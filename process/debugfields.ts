// Where, inside the target's `_Py_DebugOffsets` (3.13+), the offsets a stack reader needs
// are kept, per minor version: the struct gains fields between versions, so the place of
// each moves (Include/internal/pycore_runtime.h in 3.13, pycore_debug_offsets.h since 3.14;
// the places checked on the pyenv 3.13 and Debian 3.14/3.15 builds: 3.13 against its header,
// 3.14/3.15 by the values the targets' structs hold, e.g. tuple ob_item 32, not 24, since
// 3.14 caches a tuple's hash before its items). process/debugoffsets.ts
// has the head every version shares; the values are always the target's own.

export interface DebugFields {
  thread: {
    next: number;
    interp: number;
    currentFrame: number;
    threadId: number;
    nativeThreadId: number;
  };
  frame: { previous: number; executable: number; instrPtr: number; localsplus: number };
  code: {
    filename: number;
    name: number;
    qualname: number;
    linetable: number;
    firstlineno: number;
    codeAdaptive: number;
    localsplusNames: number;
    localsplusKinds: number;
  };
  /** interpreter_state.ceval_gil (the GIL it uses), gil_runtime_state (its own, `_gil`), and
   * gil_runtime_state_locked / _holder (fields of its own). */
  gil: { cevalGil: number; state: number; locked: number; holder: number };
  /** pyobject.ob_type, type_object.tp_name, tuple_object, float_object, long_object. */
  objects: {
    obType: number;
    tpName: number;
    tupleItems: number;
    tupleSize: number;
    floatValue: number;
    longTag: number;
    longDigits: number;
  };
  bytesData: number;
  asciiSize: number;
}

/** One version's places. Inside each section of the struct the fields used here follow one
 * another (8 bytes each) in the order of DebugFields; only where each run starts moves. */
function places(at: {
  threadNext: number;
  threadId: number;
  framePrevious: number;
  codeFilename: number;
  codeAdaptive: number;
  gilLocked: number;
  obType: number;
  tupleItems: number;
  bytesData: number;
  asciiSize: number;
}): DebugFields {
  return {
    thread: {
      next: at.threadNext,
      interp: at.threadNext + 8,
      currentFrame: at.threadNext + 16,
      threadId: at.threadId,
      nativeThreadId: at.threadId + 8,
    },
    frame: {
      previous: at.framePrevious,
      executable: at.framePrevious + 8,
      instrPtr: at.framePrevious + 16,
      localsplus: at.framePrevious + 24,
    },
    code: {
      filename: at.codeFilename,
      name: at.codeFilename + 8,
      qualname: at.codeFilename + 16,
      linetable: at.codeFilename + 24,
      firstlineno: at.codeFilename + 32,
      codeAdaptive: at.codeAdaptive,
      // after argcount (codeFilename + 40)
      localsplusNames: at.codeFilename + 48,
      localsplusKinds: at.codeFilename + 56,
    },
    // ceval_gil, gil_runtime_state, gil_runtime_state_enabled, then locked and holder
    gil: {
      cevalGil: at.gilLocked - 24,
      state: at.gilLocked - 16,
      locked: at.gilLocked,
      holder: at.gilLocked + 8,
    },
    objects: {
      obType: at.obType,
      tpName: at.obType + 16, // the next section: its size, then tp_name
      tupleItems: at.tupleItems,
      tupleSize: at.tupleItems + 8,
      // float_object, long_object, then bytes_object: the run before bytes' ob_sval
      floatValue: at.bytesData - 48,
      longTag: at.bytesData - 32,
      longDigits: at.bytesData - 24,
    },
    bytesData: at.bytesData,
    asciiSize: at.asciiSize,
  };
}

export const DEBUG_FIELDS: Readonly<Record<string, DebugFields>> = {
  "3.13": places({
    threadNext: 168,
    threadId: 192,
    framePrevious: 232,
    codeFilename: 280,
    codeAdaptive: 344,
    gilLocked: 136,
    obType: 360,
    tupleItems: 408,
    bytesData: 528,
    asciiSize: 560,
  }),
  "3.14": places({
    threadNext: 192,
    threadId: 216,
    framePrevious: 256,
    codeFilename: 320,
    codeAdaptive: 384,
    gilLocked: 144,
    obType: 408,
    tupleItems: 456,
    bytesData: 608,
    asciiSize: 640,
  }),
  "3.15": places({
    threadNext: 192,
    threadId: 240,
    framePrevious: 320,
    codeFilename: 384,
    codeAdaptive: 448,
    gilLocked: 144,
    obType: 472,
    tupleItems: 552,
    bytesData: 704,
    asciiSize: 736,
  }),
};

/** Bytes of the struct to read to reach every field above. */
export const DEBUG_FIELDS_SIZE = 744;
