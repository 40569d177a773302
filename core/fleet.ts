// The set of processes one command acts on: `--pid` with several pids (repeated or comma
// separated) and/or `--children PID` (every Python descendant of PID, `--include-parent` adds
// PID itself). With --children the set grows: a worker the master forks later is found by
// polling /proc.
import { InvalidArgumentError } from "commander";
import { type Options, UsageError } from "./command.ts";
import { isPython, pythonDescendants, roleOfProcess } from "./processes.ts";
import { processExists } from "../process/procfs.ts";

/** How often a --children set looks for new descendants. */
export const DISCOVERY_INTERVAL_MS = 250;

export interface TargetSet {
  /** The pids named with --pid. */
  pids: number[];
  /** The root named with --children, if any. */
  root?: number;
  /** Whether the root itself belongs to the set. */
  includeParent: boolean;
}

/** One process of the set: its pid and its role in its family (null when not told). */
export interface Member {
  pid: number;
  role: string | null;
}

/** commander's parser for --pid: "12", "12,13" or repeated; accumulates into a list. */
export function parsePidList(value: string, previous: number[] | undefined): number[] {
  const pids = value.split(",").map((p) => p.trim());
  if (pids.some((p) => !/^\d+$/.test(p) || Number(p) <= 0)) {
    throw new InvalidArgumentError("not a process id or a comma-separated list of them.");
  }
  return [...(previous ?? []), ...pids.map(Number)];
}

/** The set the options name when it is more than the one usual target; null otherwise. */
export function targetSet(opts: Options): TargetSet | null {
  const pids = (opts.pids as number[] | undefined) ?? [];
  const root = opts.children as number | undefined;
  if (root === undefined && opts.includeParent) {
    throw new UsageError("--include-parent goes with --children PID");
  }
  if (root === undefined && pids.length < 2) return null;
  return { pids: [...new Set(pids)], root, includeParent: opts.includeParent === true };
}

/** The pids of the set as it is now. */
export function currentPids(set: TargetSet): number[] {
  const found = [...set.pids];
  if (set.root !== undefined) {
    if (set.includeParent && isPython(set.root)) found.push(set.root);
    found.push(...pythonDescendants(set.root));
  }
  return [...new Set(found)];
}

export function memberOf(pid: number): Member {
  return { pid, role: roleOfProcess(pid) };
}

/**
 * Calls `onNew` for every process of the set not seen before: now, and when `follow` (a stream
 * over --children) every DISCOVERY_INTERVAL_MS until `signal` aborts or the root exits.
 */
export async function discover(
  set: TargetSet,
  onNew: (member: Member, late: boolean) => void,
  options: { follow: boolean; signal: AbortSignal },
): Promise<void> {
  const { signal } = options;
  const seen = new Set<number>();
  const look = (late: boolean) => {
    for (const pid of currentPids(set)) {
      if (seen.has(pid)) continue;
      seen.add(pid);
      onNew(memberOf(pid), late);
    }
  };
  look(false);
  if (set.root === undefined || !options.follow) return;
  while (!signal.aborted && processExists(set.root)) {
    await sleep(DISCOVERY_INTERVAL_MS, signal);
    if (!signal.aborted) look(true);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
