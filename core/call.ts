// Running a command's snippet in the agent: the snippet and the agent libraries it
// declares are sent on first use (by hash), then the call streams frames and replies.
import type { PeekaCommand } from "./command.ts";
import { type AgentClient, type Frame, sha256 } from "./protocol.ts";
import { librarySources } from "../agent/libs.ts";

/** Runs a command's snippet in the agent (the snippet and its libraries are sent on first use). */
export async function callCommand(
  agent: AgentClient,
  cmd: PeekaCommand,
  request: Record<string, unknown>,
  options: { onFrame?: (f: Frame) => void; signal?: AbortSignal } = {},
): Promise<Record<string, unknown>> {
  if (!cmd.snippet) throw new Error(`command ${cmd.name} has no snippet`);
  const snippet = { source: cmd.snippet, hash: await sha256(cmd.snippet) };
  return await agent.call(cmd.name, snippet, request, {
    ...options,
    libs: await librarySources(cmd.libs ?? []),
  });
}

/** Runs `work` with an AbortSignal that Ctrl-C (or SIGTERM) aborts; says whether it did. */
export async function untilInterrupted<T>(
  work: (signal: AbortSignal) => Promise<T>,
): Promise<{ value: T; interrupted: boolean }> {
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, onSignal);
  try {
    const value = await work(interrupt.signal);
    return { value, interrupted: interrupt.signal.aborted };
  } finally {
    for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(sig, onSignal);
  }
}
