// One command over a set of processes (core/fleet.ts): every process gets the run a single
// target gets, printing through its own MemberOutput (pid and role on every line), so the
// lines merge into one stream and commands need no change. On top of that, this module keeps
// what belongs to the set: -n counted over every process's observations (reaching it stops
// them all), new processes joining a --children stream, a command's combined view
// (`fleet.combine`) and one exit status.
import type { CommandContext, PeekaCommand } from "./command.ts";
import type { Frame } from "./protocol.ts";
import { discover, type Member, type TargetSet } from "./fleet.ts";
import { MemberOutput } from "./member_output.ts";
import { memberBase, notLoadedYet, prepareMember, type RunBase, type RunOn } from "./set_member.ts";
import { untilInterrupted } from "./call.ts";
import { SessionError } from "./session.ts";
import { processExists } from "../process/procfs.ts";

export interface SetRun {
  cmd: PeekaCommand;
  set: TargetSet;
  /** The command line as given (each process gets it with its own pid: core/set_member.ts). */
  base: RunBase;
  /** A context for what the set prints as a whole (combined observations). */
  setContext: CommandContext;
  runOn: RunOn;
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
  if (run.set.root !== undefined && !processExists(run.set.root)) {
    throw new SessionError("NO_SUCH_PROCESS", `no process with pid ${run.set.root}`);
  }
  const statuses = await new Fanout(run).run();
  if (!statuses.length) throw noTargets(run.set);
  return setStatus(statuses);
}

/** One run over a set: the processes found, their statuses, and what stops the whole set. */
class Fanout {
  private readonly statuses: number[] = [];
  private readonly running = new Set<number>();
  private readonly work = new Set<Promise<void>>();
  private readonly limit: SetLimit | null;
  private readonly combiner: Combiner | null;
  /** The command with -n over the set and the combined view around its onFrame. */
  private readonly command: PeekaCommand;
  /** -n reached. */
  private readonly stop: AbortSignal;
  /** A --children stream also ends when its processes' streams all ended by themselves (top -d,
   * monitor -n): a worker forked later would start a stream nobody asked for. */
  private readonly finished = new AbortController();
  private endedByItself = false;
  /** Ctrl-C (the whole set's scope). */
  private interrupted = new AbortController().signal;

  constructor(private readonly setRun: SetRun) {
    const { cmd } = setRun;
    const times = Number(setRun.base.opts.times);
    this.limit = cmd.streaming && !cmd.fleet?.timesPerProcess && times > 0
      ? new SetLimit(times)
      : null;
    this.stop = this.limit?.stop.signal ?? new AbortController().signal;
    this.combiner = cmd.fleet?.combine
      ? new Combiner(
        cmd.fleet.combine,
        () => this.running,
        (items) => cmd.onFrame?.({ id: 0, type: "batch", items }, setRun.setContext),
      )
      : null;
    this.command = {
      ...cmd,
      onFrame: (frame, ctx) => {
        const admitted = this.limit ? this.limit.admit(frame) : frame;
        if (!admitted) return;
        cmd.onFrame?.(admitted, ctx);
        this.combiner?.add(ctx.targetPid(), admitted);
      },
    };
  }

  /** Finds the processes (and, following --children, those that come later) and runs the
   * command on each; resolves with their statuses once all are done. */
  async run(): Promise<number[]> {
    const { cmd, set, base } = this.setRun;
    const follow = cmd.streaming === true && set.root !== undefined;
    if (follow) base.out.status(`following the Python descendants of process ${set.root}`);
    // One scope for the whole set: Ctrl-C ends the discovery, and a process still being
    // attached then is not given the command.
    await untilInterrupted(async (signal) => {
      this.interrupted = signal;
      await discover(set, (member, late) => this.start(member, late), {
        follow,
        signal: AbortSignal.any([signal, this.stop, this.finished.signal]),
      });
      while (this.work.size) await Promise.all([...this.work]);
    });
    return this.statuses;
  }

  private start(member: Member, late: boolean): void {
    const job = this.runMember(member, late);
    this.work.add(job);
    job.finally(() => this.work.delete(job));
  }

  private async runMember(member: Member, late: boolean): Promise<void> {
    const { cmd, set, base, runOn } = this.setRun;
    const out = new MemberOutput(base.out, member);
    const own = { ...base, out };
    const skipped = await prepareMember(cmd, set, member, own, runOn);
    if (skipped !== null) return void this.statuses.push(skipped);
    // Ctrl-C or -n while it was being attached: it is not given the command.
    if (this.interrupted.aborted) return void this.statuses.push(130);
    if (this.stop.aborted) return void this.statuses.push(0);
    this.running.add(member.pid);
    try {
      const status = await runOn(this.command, memberBase(own, cmd, member.pid, out), member.pid, {
        stop: this.stop,
        retry: late ? notLoadedYet(Date.now()) : undefined,
      });
      this.statuses.push(status);
      if (status === 0 && processExists(member.pid)) this.endedByItself = true;
    } finally {
      this.running.delete(member.pid);
      this.combiner?.flush();
      if (this.endedByItself && !this.running.size) this.finished.abort();
    }
  }
}

function noTargets(set: TargetSet): SessionError {
  return new SessionError(
    "NO_TARGETS",
    `process ${set.root} has no Python child processes; ` +
      "add --include-parent to act on the process itself",
  );
}
