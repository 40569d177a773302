// reset: remove instrumentation — of functions matching a pattern, or all of it.
import { defineCommand, UsageError } from "../../core/command.ts";
import snippet from "./snippet.py" with { type: "text" };

interface Enhanced {
  watch_id: string;
  command: string;
  pattern: string;
  functions: string[];
}

export default defineCommand({
  name: "reset",
  summary: "Remove instrumentation (watch, stack, monitor, trace, tt, line) and tt records",
  arguments: [{
    name: "pattern",
    description: "function name pattern (wildcards * and ?), e.g. 'myapp.*'",
  }],
  options: [
    { flags: "--all", description: "remove every instrumentation" },
    { flags: "-l, --list", description: "only list what is instrumented" },
  ],
  snippet,
  libs: ["instrument"],
  request: (opts, args) => {
    if (!opts.all && !opts.list && !args[0]) {
      throw new UsageError("give a pattern, --all or --list");
    }
    return { pattern: args[0] ?? null, all: Boolean(opts.all), list: Boolean(opts.list) };
  },
  render(data) {
    const items = (data.affected ?? data.enhanced ?? []) as Enhanced[];
    const verb = data.action === "list" ? "instrumented" : "removed";
    if (!items.length) {
      return data.action === "list"
        ? "Nothing is instrumented."
        : "Nothing matched; nothing removed.";
    }
    return [
      `${items.length} ${verb}:`,
      ...items.map((e) => `  ${e.watch_id} ${e.command} ${e.pattern} (${e.functions.join(", ")})`),
    ].join("\n");
  },
});
