// Builds the whole command line from the command registry with commander,
// and runs agent commands: connect, send the snippet's request, print.

import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import {
  type CommandContext,
  type Options,
  type OptionSpec,
  type PeekaCommand,
  type Registry,
} from "./command.ts";
import { Output } from "./output.ts";
import { AgentClient, AgentGoneError, AgentTimeoutError, SessionEndedError } from "./protocol.ts";
import {
  callCommand,
  currentGuard,
  InterruptGuard,
  setActiveGuard,
  untilInterrupted,
} from "./call.ts";
import { hasSocket, resolvePid, SessionError, type SessionPaths, sessionPaths } from "./session.ts";
import { diagnose, type Diagnosis, glance } from "./diagnose.ts";
import { parsePidList, type TargetSet, targetSet } from "./fleet.ts";
import { runOverSet } from "./fanout.ts";
import type { RunBase } from "./set_member.ts";
import { PeekaError } from "../process/errors.ts";

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
  // A broken connection says why from what /proc shows, not what the socket said.
  if (
    e instanceof AgentGoneError || e instanceof Deno.errors.ConnectionRefused ||
    e instanceof Deno.errors.NotFound
  ) {
    return { code: "AGENT_GONE", message: agentGoneMessage(pid) };
  }
  if (e instanceof PeekaError) return { code: e.code, message: e.message };
  if (e instanceof Deno.errors.PermissionDenied) {
    return {
      code: "PERMISSION_DENIED",
      message: `${(e as Error).message}; run peeka as the target's user or root`,
    };
  }
  return { code: "INTERNAL_ERROR", message: e instanceof Error ? e.message : String(e) };
}

/** Why the agent went away: the process ended, someone detached it, or it just stopped serving. */
function agentGoneMessage(pid?: number): string {
  if (!pid) return "the agent of the target is not answering; run 'peeka attach <pid>' again";
  const seen = glance(pid);
  if (seen?.verdict === "exited" || seen?.verdict === "zombie") return seen.message;
  if (!sessionSocketExists(pid)) {
    // Attaching again would be a new session, not what the user had: say what happened instead.
    return `the agent of process ${pid} is gone: its session was removed (another client detached it)`;
  }
  return `the agent of process ${pid} is not answering; run 'peeka attach ${pid}' again`;
}

function sessionSocketExists(pid: number): boolean {
  try {
    return hasSocket(sessionPaths(pid));
  } catch {
    return false;
  }
}

/** Why there is no socket to connect to: not attached, or attached by a user we cannot see. */
function notAttachedError(paths: SessionPaths): SessionError {
  if (Deno.uid() !== 0 && Deno.uid() !== paths.uid && agentListens(paths)) {
    return new SessionError(
      "ATTACHED_BY_OTHER_USER",
      `process ${paths.pid} is attached by another user (its session belongs to uid ${paths.uid}); ` +
        "run peeka as that user or root",
    );
  }
  return new SessionError(
    "NOT_ATTACHED",
    `process ${paths.pid} is not attached; run 'peeka attach ${paths.pid}' first ` +
      `(or 'peeka dump ${paths.pid}': every thread's stack, read without attaching)`,
  );
}

/** Whether the target's agent socket is bound, from the kernel's list of Unix sockets in the
 * target's network namespace (readable where the session directory is not). */
function agentListens(paths: SessionPaths): boolean {
  const wanted = ` ${paths.targetDir}/agent.sock`;
  for (const list of [`/proc/${paths.pid}/net/unix`, "/proc/net/unix"]) {
    try {
      return Deno.readTextFileSync(list).split("\n").some((line) => line.endsWith(wanted));
    } catch { /* try the next view */ }
  }
  return false;
}

/** The pid a command names in its first argument (attach, detach), when it has one. */
function pidArgument(cmd: PeekaCommand, args: string[]): number | undefined {
  return cmd.arguments?.[0]?.name === "pid" && /^\d+$/.test(args[0] ?? "")
    ? Number(args[0])
    : undefined;
}

/** Appends "process N is stopped..." to a failure whose own words do not say so. */
function withTargetState(message: string, pid: number | undefined, e: unknown): string {
  if (!pid || e instanceof AgentTimeoutError) return message; // a timeout already said why
  const seen = glance(pid);
  if (!seen || (seen.verdict !== "stopped" && seen.verdict !== "traced")) return message;
  return /\bstopped\b/.test(message) ? message : `${message}; ${seen.message}`;
}

/** What a second Ctrl-C (or silence after the first) says as peeka exits. */
function interruptedMessage(askedToStop: boolean, seen: Diagnosis | null): string {
  const why = seen && seen.verdict !== "unknown" ? ` (${seen.message})` : "";
  return askedToStop ? `interrupted; the agent did not answer${why}` : `interrupted${why}`;
}

/**
 * A stream that ends because its target exited or another client detached the
 * agent ends well (exit 0): the agent's own event was printed as it came;
 * when the connection only closed, the target's exit is said here.
 */
function streamEnded(e: unknown, pid: number | undefined, out: Output): boolean {
  if (e instanceof SessionEndedError) return true;
  if (!(e instanceof AgentGoneError) || !pid) return false;
  const seen = glance(pid);
  if (seen?.verdict !== "exited" && seen?.verdict !== "zombie") return false;
  out.sessionEvent("target_exited", { pid, message: seen.message });
  return true;
}

/** Ctrl-C for the whole command, whatever it does: a second one always exits. */
function interruptGuard(
  cmd: PeekaCommand,
  knownPid: () => number | undefined,
  out: Output,
): InterruptGuard {
  return new InterruptGuard(async (askedToStop) => {
    const target = knownPid();
    const seen = target ? await diagnose(target, 50) : null;
    out.error(cmd.name, interruptedMessage(askedToStop, seen), {
      code: "INTERRUPTED",
      ...(target ? { pid: target } : {}),
    });
    Deno.exit(130);
  });
}

/** Says how a command failed (or that its stream ended well) and returns the exit status. */
function failed(
  cmd: PeekaCommand,
  e: unknown,
  pid: number | undefined,
  out: Output,
  interrupted: boolean,
): number {
  if (cmd.streaming && streamEnded(e, pid, out)) return 0;
  const where = pid ? { pid } : {};
  if (interrupted && e instanceof AgentTimeoutError) {
    // The cancel's deadline passed before the grace did: the same end as a second Ctrl-C.
    out.error(cmd.name, interruptedMessage(true, e.diagnosis), { code: "INTERRUPTED", ...where });
    return 130;
  }
  const { code, message } = describeError(e, pid);
  // A plugin's failure names the plugin's file, so that its author (not peeka) is looked at.
  const plugin = cmd.origin && cmd.origin !== "built-in" ? `plugin ${cmd.origin}: ` : "";
  out.error(cmd.name, plugin + withTargetState(message, pid, e), {
    code,
    ...where,
    ...(plugin ? { plugin: cmd.origin } : {}),
  });
  return code === "USAGE" ? 2 : 1;
}

/** A command's context on one target: its pid (fixed, or resolved on first use) and one agent
 * connection, opened on first use and closed by `close()`. */
interface TargetContext extends CommandContext {
  knownPid(): number | undefined;
  close(): void;
}

function targetContext(cmd: PeekaCommand, base: RunBase, fixedPid?: number): TargetContext {
  let client: AgentClient | null = null;
  let pid = fixedPid;
  const ctx: TargetContext = {
    ...base,
    targetPid: () => (pid ??= resolvePid(base.opts.pid as number | undefined)),
    agent: async () => {
      if (client) return client;
      const paths = sessionPaths(ctx.targetPid());
      if (!hasSocket(paths)) throw notAttachedError(paths);
      client = await AgentClient.connect(paths.socket);
      return client;
    },
    knownPid: () => pid ?? (base.opts.pid as number | undefined) ?? pidArgument(cmd, base.args),
    close: () => (client as AgentClient | null)?.close(),
  };
  return ctx;
}

/** One run of a command on one target: its own `run`, or its snippet's call (printed as it
 * streams; `stop` ends a stream as Ctrl-C does, for -n over a set). */
async function runOnce(cmd: PeekaCommand, ctx: CommandContext, stop?: AbortSignal) {
  if (cmd.run) return await cmd.run(ctx);
  if (!cmd.snippet) throw new Error(`command ${cmd.name} has neither run nor snippet`);
  const request = cmd.request?.(ctx.opts, ctx.args) ?? {}; // a usage error before any connection
  const agent = await ctx.agent();
  // Ctrl-C (or SIGTERM) on a streaming command: the agent stops it and replies as usual.
  const { value: data, interrupted } = await untilInterrupted((signal) =>
    callCommand(agent, cmd, request, {
      onFrame: (f) => cmd.onFrame?.(f, ctx),
      signal: stop ? AbortSignal.any([signal, stop]) : signal,
    })
  );
  if (!cmd.streaming) {
    ctx.out.result(
      cmd.name,
      data,
      () => cmd.render?.(data, ctx.opts) ?? JSON.stringify(data, null, 2),
    );
  }
  return interrupted ? 130 : 0;
}

/** Runs a command on one target and says how it failed; `retry` may ask for another try. */
async function runTarget(
  cmd: PeekaCommand,
  ctx: TargetContext,
  guard: InterruptGuard,
  options: { stop?: AbortSignal; retry?: (e: unknown) => boolean; alone?: boolean } = {},
): Promise<number> {
  try {
    for (;;) {
      try {
        return await runOnce(cmd, ctx, options.stop);
      } catch (e) {
        if (guard.signalled || options.stop?.aborted || !options.retry?.(e)) throw e;
        await new Promise((r) => setTimeout(r, RETRY_DELAY_MS));
      }
    }
  } catch (e) {
    // (one process only: over a set, the others' answers stay the output)
    if (
      options.alone && cmd.whenNotAttached && e instanceof PeekaError && e.code === "NOT_ATTACHED"
    ) {
      await cmd.whenNotAttached(ctx).catch(() => {}); // extra: the error below stands
    }
    return failed(cmd, e, ctx.knownPid(), ctx.out, guard.signalled);
  } finally {
    ctx.close();
  }
}

/** Between two tries of a command on a worker that has just started (its modules loading). */
const RETRY_DELAY_MS = 200;

/** The same command on every process of a set (core/fanout.ts), each through runTarget. */
function runOnSet(
  cmd: PeekaCommand,
  set: TargetSet,
  base: RunBase,
  guard: InterruptGuard,
): Promise<number> {
  return runOverSet({
    cmd,
    set,
    base,
    setContext: targetContext(cmd, base),
    runOn: (command, memberBase, pid, options) =>
      runTarget(command, targetContext(command, memberBase, pid), guard, options),
  });
}

async function runCommand(
  cmd: PeekaCommand,
  opts: Options,
  args: string[],
  out: Output,
  registry: Registry,
): Promise<number> {
  const base = { out, opts, args, registry };
  const ctx = targetContext(cmd, base);
  // A command run inside another (the demo's steps) keeps the outer one's guard: the first
  // Ctrl-C then reaches the outer command, which cleans up, instead of exiting in the step.
  const outer = currentGuard();
  const guard = outer ?? interruptGuard(cmd, ctx.knownPid, out).install();
  if (!outer) setActiveGuard(guard);
  try {
    const set = targetSet(opts);
    if (!set) return await runTarget(cmd, ctx, guard, { alone: true });
    cmd.request?.(opts, args); // a usage error once, before any process is touched
    return await runOnSet(cmd, set, base, guard);
  } catch (e) {
    return failed(cmd, e, undefined, out, guard.signalled);
  } finally {
    if (!outer) {
      guard.uninstall();
      setActiveGuard(null);
    }
  }
}

/** Whether a command acts on attached processes (and so takes --pid, --children). */
function takesTargets(cmd: PeekaCommand): boolean {
  return cmd.needsTarget ?? Boolean(cmd.snippet);
}

/** --pid (one or several), --children and --include-parent. */
function addTargetOptions(sub: Command): void {
  sub.addOption(
    new Option(
      "--pid <pids>",
      "target process; several as 12,13 or repeated (default: the attached one)",
    ).argParser(parsePidList),
  );
  sub.addOption(
    new Option(
      "--children <pid>",
      "every Python descendant of this process (e.g. a master's " +
        "workers), including those that start later; streams attach them",
    )
      .argParser(parserFor({ flags: "", description: "", type: "int" })!),
  );
  sub.option("--include-parent", "with --children: the process itself too");
}

/** `opts.pid` stays the one pid every command reads; a set of them goes to `opts.pids` (and a
 * pid given as the first argument joins them). */
function normalizeTargets(cmd: PeekaCommand, opts: Options, args: string[]): void {
  const pids = [...((opts.pid as number[] | undefined) ?? [])];
  const named = pidArgument(cmd, args);
  if (named !== undefined && (pids.length || opts.children !== undefined)) pids.unshift(named);
  opts.pids = pids;
  opts.pid = pids.length === 1 ? pids[0] : undefined;
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
    .exitOverride()
    // Options are read where they stand, so a command can leave those after its first
    // argument to it (passThroughOptions); peeka itself has none of its own but -V/--help.
    .enablePositionalOptions();
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
    if (takesTargets(cmd)) addTargetOptions(sub);
    if (cmd.passThroughOptions) sub.passThroughOptions();
    sub.option("--json", "print JSON lines (default when stdout is not a terminal)");
    sub.action(async (...params: unknown[]) => {
      const command = params[params.length - 1] as Command;
      const opts = command.opts();
      const args = (params.slice(0, -2) as (string | undefined)[]).filter((a): a is string =>
        a !== undefined
      );
      if (takesTargets(cmd)) normalizeTargets(cmd, opts, args);
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
