// peeka: runtime diagnostics for live CPython processes.
// Entry point of the CLI, and the API that command plugins import (`from "peeka"`).
import { main } from "./core/cli.ts";
import { builtinCommands } from "./commands/registry.ts";
import tui from "./tui/command.ts";
import { CommandFailure, defineCommand, UsageError } from "./core/command.ts";
import { clock, compact, printFrame } from "./core/stream.ts";
import * as usage from "./core/usage.ts";
import { parseDuration } from "./commands/top/command.ts";
import { loadPlugins, pluginDirs, providePluginApi, withoutPluginDirs } from "./plugins/loader.ts";

export { CommandFailure, defineCommand, UsageError } from "./core/command.ts";
export { clock, compact, printFrame } from "./core/stream.ts";
// What an instrumented command (watch, stack, monitor, trace, a plugin's own) shares on the
// command line: the pattern, -n, --condition, --strict, --rate, their request fields and checks.
export * from "./core/usage.ts";
export { parseDuration } from "./commands/top/command.ts";
export type {
  ArgumentSpec,
  CommandContext,
  Options,
  OptionSpec,
  PeekaCommand,
  Registry,
} from "./core/command.ts";
export type { Frame } from "./core/protocol.ts";

/** What a plugin's `import { … } from "peeka"` receives: the same functions as the exports above. */
export const pluginApi = {
  defineCommand,
  UsageError,
  CommandFailure,
  printFrame,
  compact,
  clock,
  ...usage,
  parseDuration,
};

/** The name we were invoked as: `peeka-cli` prints JSON lines by default, as the seed's CLI does. */
function invokedAs(): string {
  // argv[0] as typed (a symlink's name), which Deno.execPath() resolves away.
  let argv0 = "";
  try {
    argv0 = Deno.readTextFileSync("/proc/self/cmdline").split("\0")[0];
  } catch { /* not Linux procfs */ }
  return argv0.split("/").pop() === "peeka-cli" ? "peeka-cli" : "peeka";
}

if (import.meta.main) {
  providePluginApi(pluginApi);
  // The TUI is listed before demo, as it always was; it sits above the commands it uses.
  const commands = [...builtinCommands.slice(0, -1), tui, ...builtinCommands.slice(-1)];
  const builtins = commands.map((c) => ({ ...c, origin: "built-in" }));
  const dirs = pluginDirs(Deno.args, (k) => Deno.env.get(k));
  const plugins = await loadPlugins(dirs, new Set(builtins.map((c) => c.name)));
  const registry = {
    commands: [...builtins, ...plugins.commands],
    problems: plugins.problems,
    dirs,
  };
  Deno.exit(await main(registry, withoutPluginDirs(Deno.args), invokedAs()));
}
