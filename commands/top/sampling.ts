// The sampling loop shared by both ways of reading stacks from outside (remote.ts calibrated
// by the agent, or laid out by process/pystate.ts with no agent): ticks at the interval, adds
// each sample to the profile, sends the table every refresh and, at the end, the final table,
// the stacks for the flame graph and the summary with samples asked and taken.
import type { Frame } from "../../core/protocol.ts";
import { Names, Profile } from "./profile.ts";
import type { CodeInfo, ThreadSample } from "./remote.ts";
import { Ticker } from "./clock.ts";

/** What samples a target's stacks: each thread's codes, and the names of a code object. */
export interface StackSource {
  sample(
    skip: (ident: number) => boolean,
    reuse: (ident: number, frame: bigint) => bigint[] | null,
    asleep: (ident: number) => boolean,
  ): ThreadSample[];
  codeInfo(addr: bigint): CodeInfo | null;
  /** Reads of the target's memory done so far (for the cost report). */
  reads: number;
  /** Samples in which only the GIL's holder was read. */
  heldOnly: number;
}

export interface SamplingRequest {
  interval_ms: number;
  duration: number | null;
  refresh: number;
  limit: number;
  idle: boolean;
}

/** "remote": calibrated by the agent's probe; "outside": no agent at all. */
export type SamplerKind = "remote" | "outside";

export class SamplingRun {
  readonly topId = `top_${crypto.randomUUID().slice(0, 6)}`;
  readonly profile: Profile;
  private asked = 0;
  private readerMs = 0;
  private started = 0;

  constructor(
    pid: number,
    private stacks: StackSource,
    private names: Names,
    private req: SamplingRequest,
    private kind: SamplerKind,
    private show: (frame: Frame) => void,
  ) {
    this.profile = new Profile(pid, names, (c) => stacks.codeInfo(c), req.idle);
  }

  /** Samples until the duration is over or `stop` aborts; `refreshed` runs before each table
   * is sent (the no-agent sampler learns its threads' names there). */
  async run(stop: AbortSignal, refreshed: () => void = () => {}): Promise<void> {
    const req = this.req;
    const ticker = new Ticker(req.interval_ms);
    this.started = ticker.started;
    let nextRefresh = this.started + req.refresh * 1000;
    const ends = req.duration === null ? Infinity : this.started + req.duration * 1000;
    this.show({
      type: "event",
      event: "top_started",
      data: {
        top_id: this.topId,
        interval_ms: req.interval_ms,
        duration: req.duration,
        ...this.how(),
      },
    });
    const hidden = (ident: number) => this.names.hidden.has(ident);
    const knownIdle = (ident: number, frame: bigint) => this.profile.knownIdle(ident, frame);
    const asleep = (ident: number) => this.profile.asleep(ident);
    try {
      while (!stop.aborted) {
        const now = performance.now();
        if (now >= ends) {
          // Deadlines passed while this process waited for a CPU are asked too (missed).
          ticker.due(ends);
          this.asked = ticker.asked;
          break;
        }
        if (ticker.due(now)) {
          this.profile.add(this.stacks.sample(hidden, knownIdle, asleep));
          this.readerMs += performance.now() - now;
        }
        this.asked = ticker.asked;
        if (now >= nextRefresh) {
          nextRefresh += req.refresh * 1000;
          refreshed();
          this.show(this.observation(false));
        }
        ticker.sleep(Math.min(nextRefresh, ends));
        await ticker.yieldToEvents();
      }
    } finally {
      ticker.close();
      this.profile.close();
    }
  }

  /** The final table, the stacks for --flamegraph and the summary. */
  finish(agentCpuMs = 0): void {
    const p = this.profile;
    this.show(this.observation(true, agentCpuMs));
    this.show({
      type: "profile",
      top_id: this.topId,
      samples: p.threadSamples,
      interval_ms: this.req.interval_ms,
      stacks: p.collapsed(),
    });
    this.show({
      type: "event",
      event: "top_stopped",
      data: {
        top_id: this.topId,
        ...this.counts(agentCpuMs),
        stacks_dropped: p.stacksDropped,
        reads: this.stacks.reads,
        samples_gil_holder_only: this.stacks.heldOnly,
      },
    });
  }

  private observation(final: boolean, agentCpuMs = 0): Frame {
    return {
      type: "observation",
      top_id: this.topId,
      watch_id: this.topId,
      timestamp: Date.now() / 1000,
      ...this.counts(agentCpuMs),
      functions: this.profile.table(this.req.limit),
      ...(final ? { final: true } : {}),
    };
  }

  private counts(agentCpuMs: number) {
    const p = this.profile;
    return {
      ...this.how(),
      seconds: Math.round(performance.now() - this.started) / 1000,
      samples: p.samples,
      samples_asked: this.asked,
      samples_taken: p.samples,
      thread_samples: p.threadSamples,
      idle_skipped: p.idleSkipped,
      sampling_cpu_ms: agentCpuMs,
      reader_ms: Math.round(this.readerMs * 10) / 10,
    };
  }

  /** How the stacks were read; with no agent it says so, for a reader of the JSON. */
  private how() {
    return this.kind === "outside" ? { sampler: this.kind, agent: false } : { sampler: this.kind };
  }
}
