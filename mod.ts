// peeka: runtime diagnostics for live CPython processes.
// Entry point of the CLI, and the API that command plugins import.
import { main } from "./core/cli.ts";
import { builtinCommands } from "./commands/registry.ts";

export { defineCommand } from "./core/command.ts";
export type { ArgumentSpec, CommandContext, OptionSpec, PeekaCommand } from "./core/command.ts";

/** The name we were invoked as: `peeka-cli` prints JSON lines by default, as the seed's CLI does. */
function invokedAs(): string {
  const exe = Deno.execPath().split("/").pop() ?? "peeka";
  return exe === "peeka-cli" ? "peeka-cli" : "peeka";
}

if (import.meta.main) {
  Deno.exit(await main(builtinCommands, Deno.args, invokedAs()));
}
