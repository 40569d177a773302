// watch: every call of a function — arguments, result or exception, duration.
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

interface ExceptionInfo {
  type: string;
  message: string;
  traceback?: { file: string; line: number; function: string }[];
}

export function renderObservation(o: Record<string, unknown>): string {
  const thread = (o.thread ?? {}) as { name?: string };
  const head = `${clock(o.timestamp)} ${o.func_name} #${o.count} ${o.location}` +
    (o.location === "AtEnter" ? "" : ` ${Number(o.duration_ms).toFixed(3)}ms`) +
    ` thread=${thread.name ?? "?"}` + (o.task ? ` task=${o.task}` : "");
  const lines = [head, `    args: ${compact(o.args)}  kwargs: ${compact(o.kwargs)}`];
  if (o.location === "AtExit") lines.push(`    result: ${compact(o.result)}`);
  const exc = o.exception as ExceptionInfo | null;
  if (exc) {
    lines.push(`    exception: ${exc.type}: ${exc.message}`);
    for (const f of exc.traceback ?? []) {
      lines.push(`        at ${f.function} (${f.file}:${f.line})`);
    }
  }
  return lines.join("\n");
}

export default defineCommand({
  name: "watch",
  summary: "Watch calls of a function: arguments, result, exception, time",
  description:
    "Stream every call of module.func, module.Class.method or module.Class.* as it happens. " +
    "Without -b/-s/-e/-f, each call is shown when it finishes.",
  arguments: [PATTERN_ARGUMENT],
  options: [
    {
      flags: "-x, --depth <n>",
      description: "how deep to expand nested values",
      type: "int",
      default: 2,
    },
    timesOption("observations"),
    conditionOption("only calls where this is true, e.g. 'params[0] > 100', 'cost > 50'"),
    STRICT_OPTION,
    {
      flags: "-b, --before",
      description: "observe at entry (the arguments before the function can change them)",
    },
    { flags: "-s, --success", description: "observe successful returns" },
    { flags: "-e, --exception", description: "observe calls that raise" },
    { flags: "-f, --finish", description: "observe every finished call (success or exception)" },
    rateOption("observations", 1000),
  ],
  snippet,
  libs: ["instrument", "condition", "serialize", "observe"],
  streaming: true,
  request: (opts, args) => ({
    depth: atLeast(opts.depth, 0, "-x/--depth"),
    ...observedRequest(opts, args, "observation"),
    before: Boolean(opts.before),
    success: Boolean(opts.success),
    exception: Boolean(opts.exception),
    finish: Boolean(opts.finish),
    rate: rateRequest(opts),
  }),
  onFrame: (frame, ctx) => printFrame(frame, ctx, renderObservation),
});
