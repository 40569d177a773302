// peeka: runtime diagnostics for live CPython processes.
// Entry point of the CLI, and the API that command plugins import.
import { main } from "./core/cli.ts";
import { builtinCommands } from "./commands/registry.ts";

export { defineCommand } from "./core/command.ts";
export type { ArgumentSpec, CommandContext, OptionSpec, PeekaCommand } from "./core/command.ts";

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
  Deno.exit(await main(builtinCommands, Deno.args, invokedAs()));
}
