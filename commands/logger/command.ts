// logger: the target's loggers; change a level at run time and put it back.
import { defineCommand } from "../../core/command.ts";
import snippet from "./snippet.py" with { type: "text" };

interface LoggerInfo {
  name: string;
  level: string;
  effective_level: string;
  handlers: { type: string; level: string; target?: string }[];
  propagate: boolean;
  disabled: boolean;
}

const line = (l: LoggerInfo) =>
  `${l.name.padEnd(30)} ${l.level.padEnd(8)} effective ${l.effective_level.padEnd(8)} ` +
  (l.handlers.map((h) => `${h.type}(${h.level}${h.target ? " " + h.target : ""})`).join(", ") ||
    "-") +
  (l.propagate ? "" : "  no-propagate") + (l.disabled ? "  disabled" : "");

export default defineCommand({
  name: "logger",
  summary: "List loggers and their levels; change a level at run time (put back on detach)",
  description: "peeka logger                      every logger (--pattern 'myapp.*')\n" +
    "peeka logger myapp.db             one logger\n" +
    "peeka logger myapp.db --level DEBUG   change its level\n" +
    "peeka logger --reset              put back every level peeka changed (detach does too)",
  arguments: [{
    name: "name",
    description: "a logger name ('root' for the root logger)",
    required: false,
  }],
  options: [
    { flags: "--name <name>", description: "the logger (same as the argument)" },
    {
      flags: "--level <level>",
      description: "set this level: DEBUG, INFO, WARNING, ERROR, CRITICAL or a number",
    },
    { flags: "--pattern <glob>", description: "list only loggers whose name matches" },
    { flags: "--reset", description: "restore every level peeka changed" },
  ],
  snippet,
  request: (opts, args) => ({
    name: args[0] ?? opts.name ?? null,
    level: opts.level ?? null,
    pattern: opts.pattern ?? null,
    reset: Boolean(opts.reset),
  }),
  render(data) {
    switch (data.action) {
      case "list": {
        const loggers = data.loggers as LoggerInfo[];
        return [...loggers.map(line), `${loggers.length} logger(s)`].join("\n");
      }
      case "set":
        return `${data.name}: ${data.old_level} → ${data.new_level} (effective ${data.effective_level}); ` +
          `put back with: ${data.restore}`;
      case "reset": {
        const restored = data.restored as { name: string; level: string }[];
        return restored.length
          ? restored.map((r) => `${r.name}: back to ${r.level}`).join("\n")
          : "no level was changed by peeka";
      }
      default:
        return line(data as unknown as LoggerInfo);
    }
  },
});
