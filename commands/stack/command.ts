// stack: where a function is called from — the caller stack at each entry.
import { defineCommand } from "../../core/command.ts";
import { clock, compact, printFrame } from "../../core/stream.ts";
import snippet from "./snippet.py" with { type: "text" };
import {
  atLeast,
  conditionOption,
  observedRequest,
  PATTERN_ARGUMENT,
  rateOption,
  rateRequest,
  STRICT_OPTION,
  timesOption,
} from "../../core/usage.ts";

function renderStack(o: Record<string, unknown>): string {
  const thread = (o.thread ?? {}) as { name?: string };
  const lines = [
    `${clock(o.timestamp)} ${o.func_name} #${o.count} thread=${thread.name ?? "?"} args=${
      compact(o.args, 120)
    }`,
  ];
  for (
    const f of (o.stack ?? []) as { file: string; line: number; function: string; code?: string }[]
  ) {
    lines.push(`    at ${f.function} (${f.file}:${f.line})${f.code ? "  " + f.code : ""}`);
  }
  return lines.join("\n");
}

export default defineCommand({
  name: "stack",
  summary: "Show the call stack each time a function is entered",
  arguments: [PATTERN_ARGUMENT],
  options: [
    timesOption("captures"),
    conditionOption(),
    STRICT_OPTION,
    { flags: "--depth <n>", description: "frames per stack", type: "int", default: 10 },
    rateOption("captures", 1000),
  ],
  snippet,
  libs: ["instrument", "condition", "serialize", "observe"],
  streaming: true,
  request: (opts, args) => ({
    depth: 2,
    stack_depth: atLeast(opts.depth, 1, "--depth"),
    ...observedRequest(opts, args, "capture"),
    rate: rateRequest(opts),
  }),
  onFrame: (frame, ctx) => printFrame(frame, ctx, renderStack),
});
