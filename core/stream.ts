// Printing what streaming commands (watch, stack, monitor) send: each
// observation or event becomes one JSON line, or a readable block on a terminal.
import type { CommandContext } from "./command.ts";
import type { Frame } from "./protocol.ts";

export type Human = (obs: Record<string, unknown>) => string;

/** Handles one frame from the agent: a single observation/event or a batch of them. */
export function printFrame(frame: Frame, ctx: CommandContext, human: Human): void {
  const items = frame.type === "batch" ? (frame.items as Record<string, unknown>[]) : [frame];
  for (const item of items) {
    const { id: _id, ...line } = item as Frame;
    if (ctx.out.json) {
      ctx.out.line(line);
    } else if (line.type === "event") {
      ctx.out.status(eventText(line));
    } else {
      ctx.out.text(human(line));
    }
  }
}

function eventText(e: Record<string, unknown>): string {
  const data = (e.data ?? {}) as Record<string, unknown>;
  const parts = Object.entries(data)
    .filter(([, v]) => typeof v !== "object" || v === null)
    .map(([k, v]) => `${k}=${v}`);
  // Session events (agent_detached, target_exiting) say what happened in a message of their own.
  if (typeof e.message === "string") parts.unshift(e.message);
  return `[${e.event}] ${parts.join(" ")}`;
}

/** Compact one-line JSON for values in human output. */
export function compact(v: unknown, max = 300): string {
  const s = JSON.stringify(v) ?? "undefined";
  return s.length > max ? s.slice(0, max) + "…" : s;
}

export function clock(ts: unknown): string {
  const d = new Date(Number(ts) * 1000);
  return d.toISOString().replace("T", " ").replace("Z", "");
}
