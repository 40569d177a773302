// One command over a set of processes (core/fleet.ts): every process gets the run a single
// target gets, printing through its own MemberOutput (pid and role on every line), so the
// lines merge into one stream and commands need no change. On top of that, this module keeps
// what belongs to the set: -n counted over every process's observations (reaching it stops
// them all), new processes joining a --children stream, a command's combined view
// (`fleet.combine`) and one exit status.
import type { CommandContext, PeekaCommand } from "./command.ts";
import type { Frame } from "./protocol.ts";
import type { Output } from "./output.ts";
import { discover, type Member, type TargetSet } from "./fleet.ts";
import { MemberOutput } from "./member_output.ts";
import { untilInterrupted } from "./call.ts";
import { SessionError } from "./session.ts";
import { processExists } from "../process/procfs.ts";

export interface SetRun {
  cmd: PeekaCommand;
  set: TargetSet;
  out: Output;
  /** A context for what the set prints as a whole (combined observations). */
  setContext: CommandContext;
  /** Makes a process ready for the command (attaches it when needed): null when it is, else
   * the process's status (it was skipped, or could not be made ready and said why). */
  prepare(member: Member, out: Output): Promise<number | null>;
  /** The command on one process; `late` for a process found after the start. */
  run(
    cmd: PeekaCommand,
    member: Member,
    out: Output,
    options: { stop: AbortSignal; late: boolean },
  ): Promise<number>;
}

/** The items of a frame: a batch's, or the frame itself. */
function itemsOf(frame: Frame): Frame[] {
  return frame.type === "batch" ? frame.items as Frame[] : [frame];
}

function withItems(frame: Frame, items: Frame[]): Frame {
  return frame.type === "batch" ? { ...frame, items } : items[0];
}

/** -n over the whole set: observations past it are not printed, and reaching it stops all. */
class SetLimit {
  readonly stop = new AbortController();
  private seen = 0;

  constructor(private readonly limit: number) {}

  /** The frame with only the observations still within the limit; null when none is left. */
  admit(frame: Frame): Frame | null {
    const kept = itemsOf(frame).filter((i) => i.type !== "observation" || this.take());
    if (this.seen >= this.limit) this.stop.abort();
    return kept.length ? withItems(frame, kept) : null;
  }

  private take(): boolean {
    if (this.seen >= this.limit) return false;
    this.seen++;
    return true;
  }
}

/** Collects each process's observations until every running one has sent some, then prints
 * what the command's `combine` makes of them. */
class Combiner {
  private pending = new Map<number, Record<string, unknown>[]>();

  constructor(
    private readonly combine: NonNullable<NonNullable<PeekaCommand["fleet"]>["combine"]>,
    private readonly running: () => Iterable<number>,
    private readonly print: (items: Record<string, unknown>[]) => void,
  ) {}

  add(pid: number, frame: Frame): void {
    const observations = itemsOf(frame).filter((i) => i.type === "observation");
    if (!observations.length) return;
    this.pending.set(pid, [...(this.pending.get(pid) ?? []), ...observations]);
    this.flush();
  }

  /** A process left: the others need not wait for it. */
  flush(): void {
    const running = [...this.running()];
    if (!this.pending.size || running.some((pid) => !this.pending.has(pid))) return;
    const byPid = new Map(this.pending); // a process that left meanwhile still counts
    this.pending.clear();
    this.print(this.combine(byPid));
  }
}

/** The worst status wins: interrupted, then failed, then fine. */
function setStatus(statuses: number[]): number {
  if (statuses.includes(130)) return 130;
  return statuses.find((s) => s !== 0) ?? 0;
}

export async function runOverSet(run: SetRun): Promise<number> {
  const { cmd, set } = run;
  if (set.root !== undefined && !processExists(set.root)) {
    throw new SessionError("NO_SUCH_PROCESS", `no process with pid ${set.root}`);
  }
  const times = Number(run.setContext.opts.times);
  const limit = cmd.streaming && !cmd.fleet?.timesPerProcess && times > 0
    ? new SetLimit(times)
    : null;
  const stop = limit?.stop.signal ?? new AbortController().signal;
  // A --children stream also ends when its processes' streams all ended by themselves (top -d,
  // monitor -n): a worker forked later would start a stream nobody asked for.
  const finished = new AbortController();
  const running = new Set<number>();
  const combiner = cmd.fleet?.combine
    ? new Combiner(
      cmd.fleet.combine,
      () => running,
      (items) => cmd.onFrame?.({ id: 0, type: "batch", items }, run.setContext),
    )
    : null;
  const command: PeekaCommand = {
    ...cmd,
    onFrame: (frame, ctx) => {
      const admitted = limit ? limit.admit(frame) : frame;
      if (!admitted) return;
      cmd.onFrame?.(admitted, ctx);
      combiner?.add(ctx.targetPid(), admitted);
    },
  };
  const statuses: number[] = [];
  let endedByItself = false;
  const work = new Set<Promise<void>>();
  const start = (member: Member, late: boolean) => {
    const out = new MemberOutput(run.out, member);
    const job = (async () => {
      const skipped = await run.prepare(member, out);
      if (skipped !== null) return void statuses.push(skipped);
      // Ctrl-C or -n while it was being attached: it is not given the command.
      if (interrupted.aborted) return void statuses.push(130);
      if (stop.aborted) return void statuses.push(0);
      running.add(member.pid);
      try {
        const status = await run.run(command, member, out, { stop, late });
        statuses.push(status);
        if (status === 0 && processExists(member.pid)) endedByItself = true;
      } finally {
        running.delete(member.pid);
        combiner?.flush();
        if (endedByItself && !running.size) finished.abort();
      }
    })();
    work.add(job);
    job.finally(() => work.delete(job));
  };
  const follow = cmd.streaming === true && set.root !== undefined;
  if (follow) run.out.status(`following the Python descendants of process ${set.root}`);
  // One scope for the whole set: Ctrl-C ends the discovery, and a process still being attached
  // then is not given the command.
  let interrupted = new AbortController().signal;
  await untilInterrupted(async (signal) => {
    interrupted = signal;
    await discover(set, start, {
      follow,
      signal: AbortSignal.any([signal, stop, finished.signal]),
    });
    while (work.size) await Promise.all([...work]);
  });
  if (!statuses.length) throw noTargets(set);
  return setStatus(statuses);
}

function noTargets(set: TargetSet): SessionError {
  return new SessionError(
    "NO_TARGETS",
    `process ${set.root} has no Python child processes; ` +
      "add --include-parent to act on the process itself",
  );
}
