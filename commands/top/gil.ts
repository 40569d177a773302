// Which threads can have changed their Python stack since the last sample: only those that
// held the GIL. CPython's `_gil_runtime_state` counts the changes of holder (`switch_number`,
// incremented in take_gil when a thread other than `last_holder` takes it): while that count
// and the holder are the same, no other thread has run Python, so their stacks are the ones
// read before and need not be read again. With 50 threads at 5 kHz that is what keeps
// sampling within its budget; it is exact, not a guess (never on a free-threaded build).
import type { MemoryReader } from "../../process/libc.ts";
import type { PyLayout } from "../../process/pylayouts.ts";
import { DEBUG_COOKIE, DEBUG_HEAD, DebugOffsets } from "../../process/debugoffsets.ts";

export interface GilState {
  /** last_holder: the thread state that holds, or last held, the GIL. */
  holder: bigint;
  switches: bigint;
  /** The head of the interpreter's list of thread states (a thread started changes it). */
  head: bigint;
  /** The extra regions asked for, read in the same call (each null when it failed). */
  extra: (Uint8Array | null)[];
}

/** The three fields of `_gil_runtime_state` read as one: last_holder, locked, switch_number. */
const SPAN = 24;

/** A free-threaded build (3.13+, which says so in _Py_DebugOffsets) runs threads at once
 * without the GIL: there the count says nothing. */
function freeThreaded(memory: MemoryReader, runtime: bigint): boolean {
  const bytes = memory.read(runtime, DEBUG_HEAD.end);
  const debug = bytes && new DebugOffsets(bytes);
  return debug?.cookie === DEBUG_COOKIE && debug.freeThreaded;
}

export class GilWatch {
  private constructor(
    private memory: MemoryReader,
    private holderAt: bigint,
    private headAt: bigint,
  ) {}

  /** Where the GIL's state is, from the layout `dump` verifies; null when its fields are not
   * laid out as every CPython 3.8-3.15 default build lays them out (holder, int locked,
   * unsigned long switch_number: 8 bytes apart). */
  static locate(
    memory: MemoryReader,
    layout: PyLayout,
    runtime: bigint,
    interp: bigint,
  ): GilWatch | null {
    const G = layout.gil;
    if (G.locked !== G.holder + 8 || freeThreaded(memory, runtime)) return null;
    let state: bigint | null = G.in === "runtime"
      ? runtime + BigInt(G.offset)
      : interp + BigInt(G.offset);
    if (G.in === "interp-pointer") {
      const b = memory.read(state, 8);
      state = b && new DataView(b.buffer).getBigUint64(0, true);
    }
    if (!state) return null;
    const watch = new GilWatch(
      memory,
      state + BigInt(G.holder),
      interp + BigInt(layout.threadsHead),
    );
    return watch.read() ? watch : null;
  }

  /** One read of both (null when it fails or `locked` is not 0 or 1: not a GIL), and of the
   * `extra` regions [address, length] in the same call (each null when it failed). */
  read(extra: [bigint, number][] = []): GilState | null {
    const [gil, head, ...more] = this.memory.readMany(
      [this.holderAt, this.headAt, ...extra.map(([addr]) => addr)],
      [SPAN, 8, ...extra.map(([, len]) => len)],
    );
    if (!gil || !head) return null;
    const v = new DataView(gil.buffer, gil.byteOffset, SPAN);
    const locked = v.getInt32(8, true);
    if (locked !== 0 && locked !== 1) return null;
    return {
      holder: v.getBigUint64(0, true),
      switches: v.getBigUint64(16, true),
      head: new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true),
      extra: more,
    };
  }
}
