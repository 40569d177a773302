// watch: every call of a function — arguments, result or exception, duration.
import { defineCommand } from "../../core/command.ts";
import { clock, compact, printFrame } from "../../core/stream.ts";
import snippet from "./snippet.py" with { type: "text" };
import { atLeast, STRICT_OPTION, times } from "../../core/usage.ts";

interface ExceptionInfo {
  type: string;
  message: string;
  traceback?: { file: string; line: number; function: string }[];
}

export function renderObservation(o: Record<string, unknown>): string {
  const thread = (o.thread ?? {}) as { name?: string };
  const head = `${clock(o.timestamp)} ${o.func_name} #${o.count} ${o.location}` +
    (o.location === "AtEnter" ? "" : ` ${Number(o.duration_ms).toFixed(3)}ms`) +
    ` thread=${thread.name ?? "?"}`;
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
  arguments: [{
    name: "pattern",
    description: "module.func, module.Class.method or module.Class.*",
    required: true,
  }],
  options: [
    {
      flags: "-x, --depth <n>",
      description: "how deep to expand nested values",
      type: "int",
      default: 2,
    },
    {
      flags: "-n, --times <n>",
      description: "stop after n observations (-1: until Ctrl-C)",
      type: "int",
      default: -1,
    },
    {
      flags: "--condition <expr>",
      description: "only calls where this is true, e.g. 'params[0] > 100', 'cost > 50'",
    },
    STRICT_OPTION,
    {
      flags: "-b, --before",
      description: "observe at entry (the arguments before the function can change them)",
    },
    { flags: "-s, --success", description: "observe successful returns" },
    { flags: "-e, --exception", description: "observe calls that raise" },
    { flags: "-f, --finish", description: "observe every finished call (success or exception)" },
    {
      flags: "--rate <n>",
      description: "at most n observations per second (0: no limit)",
      type: "int",
      default: 1000,
    },
  ],
  snippet,
  libs: ["instrument", "condition", "serialize", "stream"],
  streaming: true,
  request: (opts, args) => ({
    pattern: args[0],
    depth: atLeast(opts.depth, 0, "-x/--depth"),
    times: times(opts.times, "observation"),
    condition: opts.condition ?? null,
    strict: Boolean(opts.strict),
    before: Boolean(opts.before),
    success: Boolean(opts.success),
    exception: Boolean(opts.exception),
    finish: Boolean(opts.finish),
    rate: atLeast(opts.rate, 0, "--rate"),
  }),
  onFrame: (frame, ctx) => printFrame(frame, ctx, renderObservation),
});
