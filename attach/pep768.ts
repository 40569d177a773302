// Attaching through CPython 3.14+'s safe external debugger interface
// (PEP 768), from TypeScript: no Python of the target's version is needed.
//
// The interpreter keeps, in each thread state, a script path buffer and a
// "pending call" flag; when a thread evaluating Python sees bit 5 of its
// eval breaker, it runs the script at that safe point (in a fresh namespace).
// Every offset used here is read from the target's own _Py_DebugOffsets, at
// the start of _PyRuntime (the .PyRuntime section of libpython or the binary),
// through process/debugoffsets.ts.

import { readMemory, writeMemory } from "../process/libc.ts";
import type { Interpreter } from "../process/procfs.ts";
import { withThreadsStopped } from "../process/freeze.ts";
import { AttachError } from "../process/errors.ts";
import { DEBUG_COOKIE, DEBUG_HEAD, DEBUG_TAILS, DebugOffsets } from "../process/debugoffsets.ts";

const PLEASE_STOP_BIT = 1 << 5; // _PY_EVAL_PLEASE_STOP_BIT
const MAX_SCRIPT_PATH = 512; // _Py_MAX_SCRIPT_PATH_SIZE
const MAX_STRUCT = 1 << 20; // no runtime struct is anywhere near this large
const MAX_WALK = 4096; // interpreters or threads followed before giving up

/** Where each thread state's request fields are, from the target's own offsets. */
export interface RemoteExecTarget {
  pid: number;
  version: string;
  threads: { tstate: bigint; nativeId: number }[];
  scriptPathAt: bigint; // offset from a thread state
  pendingCallAt: bigint;
  evalBreakerAt: bigint;
}

export class RemoteDebugDisabled extends AttachError {}

const u64 = (b: Uint8Array, off: number) =>
  new DataView(b.buffer, b.byteOffset).getBigUint64(off, true);
const i32 = (b: Uint8Array, off: number) =>
  new DataView(b.buffer, b.byteOffset).getInt32(off, true);

function read(pid: number, addr: bigint, len: number, what: string): Uint8Array {
  if (addr <= 0x1000n || addr >= 0x800000000000n) {
    throw new AttachError(
      "PEP768_BAD_MEMORY",
      `bad ${what} pointer 0x${addr.toString(16)} in process ${pid}`,
    );
  }
  const b = readMemory(pid, addr, len);
  if (b.length !== len) {
    throw new AttachError(
      "PEP768_BAD_MEMORY",
      `cannot read ${what} at 0x${addr.toString(16)} in process ${pid}`,
    );
  }
  return b;
}

/** Address of _PyRuntime in the target, from the .PyRuntime section (where CPython puts it for debuggers). */
export function runtimeAddress(interp: Interpreter): bigint {
  const addr = interp.elf.sections.find((s) => s.name === ".PyRuntime")?.addr;
  if (!addr) {
    throw new AttachError(
      "PEP768_UNAVAILABLE",
      `${interp.path} has no PyRuntime section: not a CPython 3.14+ interpreter`,
    );
  }
  return BigInt(interp.loadBias + addr);
}

/** Reads and checks _Py_DebugOffsets, then finds the main interpreter's thread states. Writes nothing. */
export function locateRemoteExec(pid: number, interp: Interpreter): RemoteExecTarget {
  const runtime = runtimeAddress(interp);
  const head = new DebugOffsets(read(pid, runtime, DEBUG_HEAD.freeThreaded + 8, "_PyRuntime"));
  const cookie = head.cookie;
  if (cookie !== DEBUG_COOKIE) {
    throw new AttachError(
      "PEP768_BAD_COOKIE",
      `process ${pid}: _PyRuntime does not start with the debug cookie (found ${
        JSON.stringify(cookie)
      }); refusing to write`,
    );
  }
  const version = head.version;
  const tail = DEBUG_TAILS[version];
  if (!tail) {
    const [maj, min] = version.split(".").map(Number);
    const why = maj === 3 && min < 14
      ? "PEP 768 needs CPython 3.14 or later"
      : "this peeka does not know its debug-offsets layout";
    throw new AttachError("PEP768_UNAVAILABLE", `process ${pid} runs CPython ${version}: ${why}`);
  }
  if (head.freeThreaded) {
    throw new AttachError(
      "PEP768_UNAVAILABLE",
      `process ${pid} is a free-threaded build; not supported through PEP 768 yet`,
    );
  }
  const offsets = new DebugOffsets(read(pid, runtime, tail.size, "_Py_DebugOffsets"));
  const o = (at: number) => {
    const v = offsets.value(at);
    if (v >= BigInt(MAX_STRUCT)) {
      throw new AttachError(
        "PEP768_BAD_MEMORY",
        `process ${pid}: implausible debug offset ${v} at ${at}`,
      );
    }
    return v;
  };
  const d = tail.debugger;
  if (o(d.scriptPathSize) !== BigInt(MAX_SCRIPT_PATH)) {
    throw new AttachError(
      "PEP768_BAD_MEMORY",
      `process ${pid}: unexpected script path size ${o(d.scriptPathSize)}`,
    );
  }
  const interpSize = Number(o(DEBUG_HEAD.interp.size)), threadSize = Number(o(tail.thread.size));
  const support = o(d.support);
  const target: RemoteExecTarget = {
    pid,
    version,
    threads: [],
    scriptPathAt: support + o(d.scriptPath),
    pendingCallAt: support + o(d.pendingCall),
    evalBreakerAt: o(d.evalBreaker),
  };
  for (
    const at of [
      target.scriptPathAt + BigInt(MAX_SCRIPT_PATH),
      target.pendingCallAt + 4n,
      target.evalBreakerAt + 8n,
    ]
  ) {
    if (at > BigInt(threadSize)) {
      throw new AttachError(
        "PEP768_BAD_MEMORY",
        `process ${pid}: debug offsets point outside the thread state`,
      );
    }
  }
  if (u64(read(pid, runtime + o(DEBUG_HEAD.runtime.finalizing), 8, "finalizing"), 0) !== 0n) {
    throw new AttachError("PEP768_UNAVAILABLE", `process ${pid} is shutting down`);
  }

  // The main interpreter is the one with id 0; the list starts at the newest.
  let interpAddr = u64(
    read(pid, runtime + o(DEBUG_HEAD.runtime.interpretersHead), 8, "interpreters.head"),
    0,
  );
  let interpState: Uint8Array | null = null;
  for (let n = 0; interpAddr && n < MAX_WALK; n++) {
    const s = read(pid, interpAddr, interpSize, "interpreter state");
    if (u64(s, Number(o(DEBUG_HEAD.interp.id))) === 0n) {
      interpState = s;
      break;
    }
    interpAddr = u64(s, Number(o(DEBUG_HEAD.interp.next)));
  }
  if (!interpState) {
    throw new AttachError("PEP768_BAD_MEMORY", `process ${pid}: main interpreter not found`);
  }
  if (i32(interpState, Number(o(d.enabled))) !== 1) {
    throw new RemoteDebugDisabled(
      "REMOTE_DEBUG_DISABLED",
      `remote debugging is disabled in process ${pid} (PYTHON_DISABLE_REMOTE_DEBUG or -X disable_remote_debug)`,
    );
  }
  let t = u64(interpState, Number(o(DEBUG_HEAD.interp.threadsHead)));
  for (let n = 0; t && n < MAX_WALK; n++) {
    const s = read(pid, t, threadSize, "thread state");
    target.threads.push({
      tstate: t,
      nativeId: Number(u64(s, Number(o(tail.thread.nativeThreadId)))),
    });
    t = u64(s, Number(o(tail.thread.next)));
  }
  if (!target.threads.length) {
    throw new AttachError("PEP768_BAD_MEMORY", `process ${pid}: no thread state found`);
  }
  return target;
}

/**
 * Asks every thread of the main interpreter to run `scriptPath` at its next
 * safe point: whichever evaluates Python first runs it. The threads are held
 * still for the few writes, so no concurrent update of an eval breaker is lost.
 */
export function requestRemoteExec(target: RemoteExecTarget, scriptPath: string): void {
  const path = new TextEncoder().encode(scriptPath);
  if (path.length >= MAX_SCRIPT_PATH) {
    throw new AttachError("PEP768_UNAVAILABLE", `script path too long: ${scriptPath}`);
  }
  const buf = new Uint8Array(path.length + 1);
  buf.set(path);
  withThreadsStopped(target.pid, () => {
    for (const { tstate } of target.threads) {
      writeMemory(target.pid, tstate + target.scriptPathAt, buf);
      writeMemory(
        target.pid,
        tstate + target.pendingCallAt,
        new Uint8Array(new Int32Array([1]).buffer),
      );
      const at = tstate + target.evalBreakerAt;
      const breaker = read(target.pid, at, 1, "eval breaker");
      writeMemory(target.pid, at, new Uint8Array([breaker[0] | PLEASE_STOP_BIT]));
    }
  });
}

/**
 * Takes back requests no thread has run yet: the path's first byte first (a
 * thread that copies an empty path runs nothing and prints nothing), then the
 * flag. A thread that copied the path just before still finds the script.
 */
export function withdrawRemoteExec(target: RemoteExecTarget): number {
  let withdrawn = 0;
  withThreadsStopped(target.pid, () => {
    for (const { tstate } of target.threads) {
      try {
        if (i32(read(target.pid, tstate + target.pendingCallAt, 4, "pending call"), 0) !== 1) {
          continue;
        }
        writeMemory(target.pid, tstate + target.scriptPathAt, new Uint8Array([0]));
        writeMemory(target.pid, tstate + target.pendingCallAt, new Uint8Array(4));
        withdrawn++;
      } catch { /* that thread has exited meanwhile */ }
    }
  });
  return withdrawn;
}

/**
 * Withdraws pending requests whose script path `ours` recognises (left by a peeka that was
 * killed before it could withdraw them); other debuggers' requests are left alone. The
 * threads are held still only when there is something to take back.
 */
export function withdrawStaleRequests(
  target: RemoteExecTarget,
  ours: (scriptPath: string) => boolean,
): number {
  const pending = (tstate: bigint) => {
    try {
      if (i32(read(target.pid, tstate + target.pendingCallAt, 4, "pending call"), 0) !== 1) {
        return false;
      }
      const raw = read(target.pid, tstate + target.scriptPathAt, MAX_SCRIPT_PATH, "script path");
      const end = raw.indexOf(0);
      return ours(new TextDecoder().decode(raw.subarray(0, end < 0 ? raw.length : end)));
    } catch {
      return false; // that thread has exited meanwhile
    }
  };
  const stale = target.threads.filter(({ tstate }) => pending(tstate));
  if (!stale.length) return 0;
  let withdrawn = 0;
  withThreadsStopped(target.pid, () => {
    for (const { tstate } of stale) {
      if (!pending(tstate)) continue;
      writeMemory(target.pid, tstate + target.scriptPathAt, new Uint8Array([0]));
      writeMemory(target.pid, tstate + target.pendingCallAt, new Uint8Array(4));
      withdrawn++;
    }
  });
  return withdrawn;
}
