// Running a command's snippet in the agent: the snippet and the agent libraries it
// declares (and those they require) are sent on first use (by hash), then the call streams frames and replies.
// Also Ctrl-C: the first asks the agent to stop, a second one (or silence) exits at once.
import type { PeekaCommand } from "./command.ts";
import type { AgentClient, Frame } from "./protocol.ts";
import { pythonSource } from "../agent/source.ts";
import { librarySources } from "../agent/libs.ts";

/** How long a call may take to answer (a streaming call: to start). */
export function callTimeoutMs(
  cmd: PeekaCommand,
  request: Record<string, unknown>,
  baseMs: number,
): number {
  const work = cmd.workMs?.(request) ?? 0;
  return baseMs + (Number.isFinite(work) && work > 0 ? work : 0);
}

/** Runs a command's snippet in the agent (the snippet and its libraries are sent on first use). */
export async function callCommand(
  agent: AgentClient,
  cmd: PeekaCommand,
  request: Record<string, unknown>,
  options: { onFrame?: (f: Frame) => void; signal?: AbortSignal } = {},
): Promise<Record<string, unknown>> {
  if (!cmd.snippet) throw new Error(`command ${cmd.name} has no snippet`);
  const snippet = await pythonSource(cmd.snippet);
  return await agent.call(cmd.name, snippet, request, {
    ...options,
    libs: await librarySources([...(cmd.libs ?? []), ...(snippet.requires ?? [])]),
    streaming: cmd.streaming === true,
    timeoutMs: callTimeoutMs(cmd, request, agent.timeoutMs),
  });
}

const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

/** How long the first Ctrl-C waits for the command to stop before peeka exits anyway. */
export const INTERRUPT_GRACE_MS = 2000;

/**
 * Ctrl-C and SIGTERM for one whole command run. Work that can stop cleanly
 * runs in a scope(): the first signal aborts it (the agent is asked to
 * cancel). A second signal, or the first when no scope can stop, or silence
 * for INTERRUPT_GRACE_MS after it, ends the process at once through
 * `giveUp` (which must exit: pending reads must not keep peeka alive).
 */
export class InterruptGuard {
  private scopes = new Set<AbortController>();
  private signals = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private installed = false;

  constructor(
    private giveUp: (askedToStop: boolean) => void | Promise<void>,
    private graceMs = INTERRUPT_GRACE_MS,
  ) {}

  install(): this {
    if (!this.installed) {
      for (const sig of STOP_SIGNALS) Deno.addSignalListener(sig, this.onSignal);
      this.installed = true;
    }
    return this;
  }

  /** Whether a stop signal came. */
  get signalled(): boolean {
    return this.signals > 0;
  }

  uninstall(): void {
    clearTimeout(this.timer);
    if (!this.installed) return;
    for (const sig of STOP_SIGNALS) Deno.removeSignalListener(sig, this.onSignal);
    this.installed = false;
  }

  /** Runs `work` with a signal that the first Ctrl-C aborts; says whether it did. */
  async scope<T>(
    work: (signal: AbortSignal) => Promise<T>,
  ): Promise<{ value: T; interrupted: boolean }> {
    const controller = new AbortController();
    this.scopes.add(controller);
    try {
      const value = await work(controller.signal);
      return { value, interrupted: controller.signal.aborted };
    } finally {
      this.scopes.delete(controller);
    }
  }

  private onSignal = () => {
    this.signals++;
    if (this.signals > 1 || this.scopes.size === 0) {
      void this.giveUp(this.signals > 1);
      return;
    }
    for (const c of this.scopes) c.abort();
    this.timer = setTimeout(() => void this.giveUp(true), this.graceMs);
  };
}

/** The guard of the command being run (set by the CLI for the whole command). */
let activeGuard: InterruptGuard | null = null;

export function setActiveGuard(guard: InterruptGuard | null): void {
  activeGuard = guard;
}

/** The guard of the command being run, if any (a command run inside another one uses it). */
export function currentGuard(): InterruptGuard | null {
  return activeGuard;
}

/** Runs `work` with an AbortSignal that Ctrl-C (or SIGTERM) aborts; says whether it did.
 * A second signal, or no answer to the first within INTERRUPT_GRACE_MS, exits with 130. */
export async function untilInterrupted<T>(
  work: (signal: AbortSignal) => Promise<T>,
): Promise<{ value: T; interrupted: boolean }> {
  if (activeGuard) return await activeGuard.scope(work);
  const guard = new InterruptGuard(() => {
    Deno.stderr.writeSync(new TextEncoder().encode("peeka: interrupted\n"));
    Deno.exit(130);
  }).install();
  try {
    return await guard.scope(work);
  } finally {
    guard.uninstall();
  }
}
