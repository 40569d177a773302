// tui: the interactive terminal UI (also what `peeka` with no arguments opens on a terminal).
import { defineCommand } from "../core/command.ts";

export default defineCommand({
  name: "tui",
  summary: "Interactive terminal UI: pick a process, then threads, watch, monitor, top",
  options: [{ flags: "--pid <pid>", description: "attach to this process at once", type: "int" }],
  needsTarget: false,
  async run(ctx) {
    if (!Deno.stdin.isTerminal() || !Deno.stdout.isTerminal()) {
      ctx.out.error(
        "tui",
        "the TUI needs a terminal; in a script use the commands (peeka --help)",
        {
          code: "USAGE",
        },
      );
      return 2;
    }
    // Ink draws nothing until exit when it believes it runs in CI (the `is-in-ci` package reads
    // CI when Ink is first loaded); this is a real terminal, checked above.
    for (const name of ["CI", "CONTINUOUS_INTEGRATION"]) {
      if (Deno.env.get(name) !== undefined) Deno.env.set(name, "0");
    }
    // Loaded only here: the rest of the CLI starts without React and Ink.
    const { runTui } = await import("./app.tsx");
    return await runTui({ pid: ctx.opts.pid as number | undefined });
  },
});
