// Waits until a watch started in the background is in place, so that the demo's next step
// (reset) finds it: asks the agent, as `peeka reset --list` does, through the registry.
import type { Registry } from "../../core/command.ts";
import { callCommand } from "../../core/call.ts";
import { AgentClient } from "../../core/protocol.ts";
import { sessionPaths } from "../../core/session.ts";

const POLL_MS = 50;
const ARMED_TIMEOUT_MS = 10000;

async function isWatched(pid: number, registry: Registry, pattern: string): Promise<boolean> {
  const reset = registry.commands.find((c) => c.name === "reset")!;
  const client = await AgentClient.connect(sessionPaths(pid).socket);
  try {
    const data = await callCommand(client, reset, { pattern: null, all: false, list: true });
    const entries = (data.enhanced ?? []) as { command: string; pattern: string }[];
    return entries.some((e) => e.command === "watch" && e.pattern === pattern);
  } finally {
    client.close();
  }
}

export type Armed = "armed" | "ended" | "aborted" | "timeout";

/** "armed" once a watch of `pattern` is listed; else why not: `ended` settled first (the watch
 * failed and said why), the signal aborted, or it was not listed within ARMED_TIMEOUT_MS. */
export async function untilWatched(
  pid: number,
  registry: Registry,
  pattern: string,
  ended: Promise<unknown>,
  signal: AbortSignal,
): Promise<Armed> {
  let over = false;
  const done = () => void (over = true);
  ended.then(done, done);
  const giveUpAt = Date.now() + ARMED_TIMEOUT_MS;
  for (;;) {
    if (over) return "ended";
    if (signal.aborted) return "aborted";
    if (Date.now() > giveUpAt) return "timeout";
    if (await isWatched(pid, registry, pattern)) return "armed";
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
