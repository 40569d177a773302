// CPython 3.13+ describes its own private structs for debuggers: `_Py_DebugOffsets`, at the start
// of `_PyRuntime`, holds the offset of each field a debugger needs (where the interpreters list
// starts, where a thread state keeps its next link, ...). This is the one reader of that struct,
// used by PEP 768 (attach/pep768.ts) and by top's remote stack reader (commands/top/remote.ts).
// Only where each offset sits inside the struct depends on the minor version; the values are the
// target's own.

/** The first bytes of `_Py_DebugOffsets`: a debugger knows it found the struct by them. */
export const DEBUG_COOKIE = "xdebugpy";

/** Positions of the fields 3.13 and later keep at the same place. */
export const DEBUG_HEAD = {
  cookie: 0,
  version: 8, // PY_VERSION_HEX
  freeThreaded: 16,
  runtime: { size: 24, finalizing: 32, interpretersHead: 40 },
  interp: { size: 48, id: 56, next: 64, threadsHead: 72 },
  /** Bytes up to here: what a reader of the head fields needs. */
  end: 80,
} as const;

/** Positions of the fields whose place moved between minor versions (fields were added). */
export interface DebugTail {
  /** Bytes of the struct to read to reach every field below. */
  size: number;
  thread: { size: number; next: number; nativeThreadId: number };
  debugger: {
    evalBreaker: number;
    support: number;
    enabled: number;
    pendingCall: number;
    scriptPath: number;
    scriptPathSize: number;
  };
}

/** The tails this peeka knows, by minor version (3.13 has no remote-debugger fields). */
export const DEBUG_TAILS: Readonly<Record<string, DebugTail>> = {
  "3.14": {
    size: 760,
    thread: { size: 176, next: 192, nativeThreadId: 224 },
    debugger: {
      evalBreaker: 712,
      support: 720,
      enabled: 728,
      pendingCall: 736,
      scriptPath: 744,
      scriptPathSize: 752,
    },
  },
  "3.15": {
    size: 888,
    thread: { size: 176, next: 192, nativeThreadId: 248 },
    debugger: {
      evalBreaker: 840,
      support: 848,
      enabled: 856,
      pendingCall: 864,
      scriptPath: 872,
      scriptPathSize: 880,
    },
  },
};

/** The bytes of a `_Py_DebugOffsets` (or its head) read from the target, by field. */
export class DebugOffsets {
  private view: DataView;

  constructor(bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get cookie(): string {
    return new TextDecoder().decode(new Uint8Array(this.view.buffer, this.view.byteOffset, 8));
  }

  /** "3.14": the minor version the struct says it describes. */
  get version(): string {
    const hex = Number(this.value(DEBUG_HEAD.version));
    return `${(hex >> 24) & 0xff}.${(hex >> 16) & 0xff}`;
  }

  get freeThreaded(): boolean {
    return this.value(DEBUG_HEAD.freeThreaded) !== 0n;
  }

  /** The offset stored in the field at `position` (one of DEBUG_HEAD's or a tail's). */
  value(position: number): bigint {
    return this.view.getBigUint64(position, true);
  }
}
