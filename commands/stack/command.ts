// stack: where a function is called from — the caller stack at each entry.
import { defineCommand } from "../../core/command.ts";
import { clock, compact, printFrame } from "../../core/stream.ts";
import snippet from "../watch/snippet.py" with { type: "text" };
import { atLeast, STRICT_OPTION, times } from "../../core/usage.ts";

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
  arguments: [{
    name: "pattern",
    description: "module.func, module.Class.method or module.Class.*",
    required: true,
  }],
  options: [
    {
      flags: "-n, --times <n>",
      description: "stop after n captures (-1: until Ctrl-C)",
      type: "int",
      default: -1,
    },
    { flags: "--condition <expr>", description: "only calls where this is true" },
    STRICT_OPTION,
    { flags: "--depth <n>", description: "frames per stack", type: "int", default: 10 },
    {
      flags: "--rate <n>",
      description: "at most n captures per second (0: no limit)",
      type: "int",
      default: 1000,
    },
  ],
  snippet,
  libs: ["instrument", "condition", "serialize", "stream"],
  streaming: true,
  request: (opts, args) => ({
    mode: "stack",
    pattern: args[0],
    depth: 2,
    stack_depth: atLeast(opts.depth, 1, "--depth"),
    times: times(opts.times, "capture"),
    condition: opts.condition ?? null,
    strict: Boolean(opts.strict),
    before: true,
    rate: atLeast(opts.rate, 0, "--rate"),
  }),
  onFrame: (frame, ctx) => printFrame(frame, ctx, renderStack),
});
