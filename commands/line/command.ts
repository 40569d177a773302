// line: the local variables each time one source line is about to run (Arthas `line`).
import { defineCommand } from "../../core/command.ts";
import { clock, compact, printFrame } from "../../core/stream.ts";
import snippet from "./snippet.py" with { type: "text" };
import {
  atLeast,
  conditionOption,
  rateOption,
  rateRequest,
  STRICT_OPTION,
  times,
  timesOption,
} from "../../core/usage.ts";

/** One hit: `12:03:04.123 shop.total:14 #3 thread=MainThread`, then one local per line. */
export function renderHit(o: Record<string, unknown>): string {
  const thread = (o.thread ?? {}) as { name?: string };
  const locals = (o.locals ?? {}) as Record<string, unknown>;
  const lines = [
    `${clock(o.timestamp)} ${o.func_name}:${o.line} #${o.count} thread=${thread.name ?? "?"}`,
    ...Object.entries(locals).map(([name, value]) => `    ${name} = ${compact(value)}`),
  ];
  if (Number(o.locals_cut) > 0) lines.push(`    (${o.locals_cut} more locals not shown)`);
  return lines.join("\n");
}

export default defineCommand({
  name: "line",
  summary: "Show the local variables each time a source line is about to run",
  description: "LOCATION is file.py:LINE or module.func:LINE (a line of that function or of " +
    "code nested in it). Only the code holding the line is instrumented, and nothing is left " +
    "once the command ends. A --condition reads the local variables by name.",
  arguments: [{
    name: "location",
    description: "file.py:LINE or module.func:LINE",
    required: true,
  }],
  options: [
    {
      flags: "-x, --depth <n>",
      description: "how deep to expand nested values",
      type: "int",
      default: 1,
    },
    timesOption("hits shown"),
    conditionOption("only hits where this is true, over the locals, e.g. 'i % 100 == 0'"),
    STRICT_OPTION,
    rateOption("hits shown", 100),
  ],
  snippet,
  libs: ["instrument", "condition", "serialize", "observe", "names", "reflect", "codes"],
  streaming: true,
  request: (opts, args) => ({
    location: args[0],
    depth: atLeast(opts.depth, 0, "-x/--depth"),
    times: times(opts.times, "hit"),
    condition: opts.condition ?? null,
    strict: Boolean(opts.strict),
    rate: rateRequest(opts),
  }),
  onFrame: (frame, ctx) => printFrame(frame, ctx, renderHit),
});
