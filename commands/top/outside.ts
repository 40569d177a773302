// top with no agent: the stacks read from outside with the layout `peeka dump` uses
// (process/pystate.ts: _Py_DebugOffsets on 3.13+, peeka's own layouts for 3.8-3.12, verified
// by one full read of the target before any sample is taken), so a process that is stuck,
// cannot be attached or must not be touched can still be profiled. Without an agent nothing
// tells module names (functions show as their qualified names) or Python thread names: the
// OS names threads (its comm), the main thread is MainThread.
import { PyStateReader } from "../../process/pystate.ts";
import { taskStates } from "../../process/taskstate.ts";
import { MemoryReader } from "../../process/libc.ts";
import type { PyLayout } from "../../process/pylayouts.ts";
import { Names } from "./profile.ts";
import { RemoteStacks } from "./remote.ts";

const MAX_THREADS = 4096;
/** glibc x86-64: where struct pthread (at pthread_t) keeps the kernel's thread id. */
const PTHREAD_TID = 0x2d0;

const plausible = (p: bigint) => p > 0x10000n && p < 0x800000000000n && (p & 7n) === 0n;

export interface OutsideSampler {
  version: string;
  stacks: RemoteStacks;
  names: Names;
  /** Learns the threads that started since (their native ids tell idle threads apart). */
  refreshNames(): void;
}

/** Opens and verifies the target; throws the reader's PeekaError (NOT_PYTHON,
 * UNSUPPORTED_VERSION, LAYOUT_UNVERIFIED) when it cannot be read from outside. */
export function openOutside(pid: number): OutsideSampler {
  const { reader, stacks } = verifiedStacks(pid);
  const names = new Names();
  // The main interpreter's threads, as sampled (the reader finds it among all of them: id 0).
  const threads = new ThreadList(pid, reader.shape.layout, reader.shape.interp);
  const update = (list: [number, number | null][]) =>
    names.update({ threads: nameThreads(pid, list), hidden: [], modules: {}, qualnames: {} });
  update(threads.read());
  return { version: reader.version, stacks, names, refreshNames: () => update(threads.read()) };
}

/** A sampler on dump's layout, verified by one full read of the target (which throws when it
 * does not check out). Also preferred when an agent is there: unlike the layout calibrated
 * from the agent's probe, it knows where the GIL is (gil.ts). */
export function verifiedStacks(pid: number) {
  const reader = PyStateReader.open(pid);
  reader.read();
  const minor = Number(reader.version.split(".")[1]);
  return { reader, stacks: RemoteStacks.fromLayout(pid, minor, reader.shape) };
}

/** [ident, name, native id] as the agent's top_names sends them. */
function nameThreads(pid: number, list: [number, number | null][]) {
  const tasks = [...taskStates(pid).values()];
  const main = tasks.find((t) => t.tid === pid);
  return list.map(([ident, native]) => {
    const task = tasks.find((t) => t.nsTid === native);
    const name = task === main && task
      ? "MainThread"
      : task && task.name !== main?.name
      ? task.name
      : `thread ${ident}`;
    return [ident, name, native] as [number, string, number | null];
  });
}

/** Each thread state's ident and OS thread id, walked cheaply between samples. */
class ThreadList {
  private memory: MemoryReader;

  constructor(pid: number, private layout: PyLayout, private interp: bigint) {
    this.memory = new MemoryReader(pid);
  }

  read(): [number, number | null][] {
    const L = this.layout.thread;
    const out: [number, number | null][] = [];
    const seen = new Set<bigint>();
    let t = this.u64(this.interp + BigInt(this.layout.threadsHead));
    while (t !== null && plausible(t) && !seen.has(t) && seen.size < MAX_THREADS) {
      seen.add(t);
      const ident = this.u64(t + BigInt(L.threadId));
      if (ident === null) break;
      const native = L.nativeThreadId !== null
        ? this.u64(t + BigInt(L.nativeThreadId))
        : plausible(ident)
        ? this.u32(ident + BigInt(PTHREAD_TID))
        : null;
      out.push([Number(ident), native ? Number(native) : null]);
      t = this.u64(t + BigInt(L.next));
    }
    return out;
  }

  private u64(addr: bigint): bigint | null {
    const b = this.memory.read(addr, 8);
    return b && new DataView(b.buffer).getBigUint64(0, true);
  }

  private u32(addr: bigint): bigint | null {
    const b = this.memory.read(addr, 4);
    return b && BigInt(new DataView(b.buffer).getUint32(0, true));
  }
}
