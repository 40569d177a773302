// Builds the whole command line from the command registry with commander,
// and runs agent commands: connect, send the snippet's request, print.

import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import {
  type CommandContext,
  CommandFailure,
  type Options,
  type OptionSpec,
  type PeekaCommand,
  type Registry,
  UsageError,
} from "./command.ts";
import { Output } from "./output.ts";
import { AgentClient, AgentError, AgentGoneError } from "./protocol.ts";
import { callCommand, untilInterrupted } from "./call.ts";
import { hasSocket, resolvePid, SessionError, sessionPaths } from "./session.ts";
import { AttachError } from "../attach/native.ts";
import { processExists } from "../attach/procfs.ts";

export { VERSION } from "./version.ts";
import { VERSION } from "./version.ts";

function parserFor(spec: OptionSpec) {
  switch (spec.type) {
    case "int":
      return (v: string) => {
        if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError("not an integer.");
        return Number(v);
      };
    case "float":
      return (v: string) => {
        const n = Number(v);
        if (v.trim() === "" || Number.isNaN(n)) throw new InvalidArgumentError("not a number.");
        return n;
      };
    default:
      return undefined;
  }
}

/** Turns any failure into the one-line message and code users see. */
export function describeError(e: unknown, pid?: number): { code: string; message: string } {
  if (e instanceof AttachError || e instanceof SessionError) {
    return { code: e.code, message: e.message };
  }
  if (e instanceof AgentError) return { code: e.code, message: e.message };
  if (e instanceof UsageError) return { code: "USAGE", message: e.message };
  if (e instanceof CommandFailure) return { code: e.code, message: e.message };
  if (
    e instanceof AgentGoneError || e instanceof Deno.errors.ConnectionRefused ||
    e instanceof Deno.errors.NotFound
  ) {
    const who = pid ? `process ${pid}` : "the target";
    const gone = pid && !processExists(pid)
      ? `${who} has exited`
      : `the agent of ${who} is not answering`;
    return { code: "AGENT_GONE", message: `${gone}; run 'peeka attach ${pid ?? "<pid>"}' again` };
  }
  if (e instanceof Deno.errors.PermissionDenied) {
    return {
      code: "PERMISSION_DENIED",
      message: `${(e as Error).message}; run peeka as the target's user or root`,
    };
  }
  return { code: "INTERNAL_ERROR", message: e instanceof Error ? e.message : String(e) };
}

async function runCommand(
  cmd: PeekaCommand,
  opts: Options,
  args: string[],
  out: Output,
  registry: Registry,
): Promise<number> {
  let client: AgentClient | null = null;
  let pid: number | undefined;
  const ctx: CommandContext = {
    out,
    opts,
    args,
    registry,
    targetPid: () => (pid ??= resolvePid(opts.pid as number | undefined)),
    agent: async () => {
      if (client) return client;
      const target = ctx.targetPid();
      const paths = sessionPaths(target);
      if (!hasSocket(paths)) {
        throw new SessionError(
          "NOT_ATTACHED",
          `process ${target} is not attached; run 'peeka attach ${target}' first`,
        );
      }
      client = await AgentClient.connect(paths.socket);
      return client;
    },
  };
  try {
    if (cmd.run) return await cmd.run(ctx);
    if (!cmd.snippet) throw new Error(`command ${cmd.name} has neither run nor snippet`);
    const agent = await ctx.agent();
    // Ctrl-C (or SIGTERM) on a streaming command: the agent stops it and replies as usual.
    const { value: data, interrupted } = await untilInterrupted((signal) =>
      callCommand(agent, cmd, cmd.request?.(opts, args) ?? {}, {
        onFrame: (f) => cmd.onFrame?.(f, ctx),
        signal,
      })
    );
    if (!cmd.streaming) {
      out.result(cmd.name, data, () => cmd.render?.(data, opts) ?? JSON.stringify(data, null, 2));
    }
    return interrupted ? 130 : 0;
  } catch (e) {
    const { code, message } = describeError(e, pid);
    // A plugin's failure names the plugin's file, so that its author (not peeka) is looked at.
    const plugin = cmd.origin && cmd.origin !== "built-in" ? `plugin ${cmd.origin}: ` : "";
    out.error(cmd.name, plugin + message, {
      code,
      ...(pid ? { pid } : {}),
      ...(plugin ? { plugin: cmd.origin } : {}),
    });
    return code === "USAGE" ? 2 : 1;
  } finally {
    (client as AgentClient | null)?.close();
  }
}

export function buildProgram(
  registry: Registry,
  name: string,
  setExit: (code: number) => void,
): Command {
  const commands = registry.commands;
  const program = new Command(name)
    .description("Look inside a running CPython process: attach, then watch, trace and inspect it.")
    .version(VERSION, "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText(
      "after",
      "\nWith no command on a terminal, peeka opens its interactive UI (peeka tui).\n" +
        "Plugins: --plugin-dir DIR (repeatable, any command), PEEKA_PLUGIN_PATH, " +
        "~/.config/peeka/plugins; 'peeka plugins' lists them.",
    )
    .exitOverride();
  const seen = new Set<string>();
  for (const cmd of commands) {
    if (seen.has(cmd.name)) throw new Error(`two commands are named ${cmd.name}`);
    seen.add(cmd.name);
    const sub = program.command(cmd.name).summary(cmd.summary).description(
      cmd.description ?? cmd.summary,
    );
    for (const a of cmd.arguments ?? []) {
      sub.argument(a.required ? `<${a.name}>` : `[${a.name}]`, a.description);
    }
    for (const spec of cmd.options ?? []) {
      const opt = new Option(spec.flags, spec.description);
      const parse = parserFor(spec);
      if (parse) opt.argParser(parse);
      if (spec.default !== undefined) opt.default(spec.default);
      sub.addOption(opt);
    }
    if (cmd.needsTarget ?? Boolean(cmd.snippet)) {
      sub.addOption(
        new Option("--pid <pid>", "target process (default: the attached one)")
          .argParser(parserFor({ flags: "", description: "", type: "int" })!),
      );
    }
    sub.option("--json", "print JSON lines (default when stdout is not a terminal)");
    sub.action(async (...params: unknown[]) => {
      const command = params[params.length - 1] as Command;
      const opts = command.opts();
      const args = (params.slice(0, -2) as (string | undefined)[]).filter((a): a is string =>
        a !== undefined
      );
      const out = new Output(opts.json === true || name === "peeka-cli" ? true : undefined);
      setExit(await runCommand(cmd, opts, args, out, registry));
    });
  }
  return program;
}

/** Entry point: parses argv and returns the exit status. */
export async function main(
  registry: Registry,
  argv: string[],
  name = "peeka",
): Promise<number> {
  let status = 0;
  // A plugin that failed to load is said once, on stderr; every other command works.
  if (argv[0] !== "plugins") {
    for (const p of registry.problems) {
      console.error(`peeka: plugin ${p.path} not loaded: ${p.error}`);
    }
  }
  const program = buildProgram(registry, name, (c) => (status = c));
  if (argv.length === 0) {
    // On a terminal, no arguments opens the TUI (as the seed's `peeka` does); in a pipe, help.
    if (
      Deno.stdin.isTerminal() && Deno.stdout.isTerminal() &&
      registry.commands.some((c) => c.name === "tui")
    ) {
      argv = ["tui"];
    } else {
      program.outputHelp();
      return 0;
    }
  }
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === "commander.helpDisplayed" || e.code === "commander.version" ||
        e.code === "commander.help"
      ) return 0;
      if (!Deno.stdout.isTerminal() || argv.includes("--json")) {
        new Output(true).line({
          type: "error",
          command: argv[0] ?? name,
          error: e.message.replace(/^error: /, ""),
          code: "USAGE",
        });
      }
      return 2;
    }
    throw e;
  }
  return status;
}
