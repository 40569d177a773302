// run: start a script with the agent loaded before its first line and a streaming command
// (watch, trace, stack, monitor, top...) already in place, print what the command sees until
// the script exits, and exit with the script's status. Nothing is installed anywhere: the
// interpreter runs `-c bootstrap.py` (the agent from the session's boot.py, as attach makes it;
// the script as __main__ once the command is in place). How the two sides pace each other is
// in snippet.py.
import {
  type CommandContext,
  defineCommand,
  type PeekaCommand,
  type Registry,
  UsageError,
} from "../../core/command.ts";
import { buildProgram } from "../../core/cli.ts";
import { callCommand, currentGuard } from "../../core/call.ts";
import { AgentClient, type Frame } from "../../core/protocol.ts";
import { launchAgent } from "../../attach/attach.ts";
import { processState, statFields } from "../../process/procfs.ts";
import { PeekaError } from "../../process/errors.ts";
import { type Command, CommanderError } from "commander";
import snippet from "./snippet.py" with { type: "text" };
import bootstrap from "./bootstrap.py" with { type: "text" };

/** The command line split: the interpreter, the script and its arguments, the command's. */
export interface RunLine {
  python: string;
  script: string;
  scriptArgs: string[];
  command: string[];
}

/**
 * Splits `run [--python P] script.py [args…] -- command [options]`. The CLI passes everything
 * after the script through unparsed (passThroughOptions), `--` included: the first `--` after
 * the script ends its arguments (the script's own `--`, if any, comes after the command's name).
 */
export function splitRunLine(parsed: string[], python: string): RunLine {
  const dashes = parsed.indexOf("--", 1);
  if (parsed[0] === undefined || parsed[0] === "--") {
    throw new UsageError("no script: peeka run app.py -- watch app.work");
  }
  if (dashes < 0) {
    throw new UsageError("put the command after --, e.g. peeka run app.py -- watch app.work");
  }
  const command = parsed.slice(dashes + 1);
  if (!command.length) throw new UsageError("no command after --, e.g. -- watch app.work");
  return { python, script: parsed[0], scriptArgs: parsed.slice(1, dashes), command };
}

/** The streaming command to run, checked against the registry. */
function commandFor(registry: Registry, name: string): PeekaCommand {
  const cmd = registry.commands.find((c) => c.name === name);
  if (!cmd || !cmd.snippet || !cmd.streaming || cmd.name === "run") {
    const streaming = registry.commands.filter((c) => c.streaming && c.snippet && c.name !== "run");
    throw new UsageError(
      `'${name}' cannot run with a script; use one of: ${streaming.map((c) => c.name).join(", ")}`,
    );
  }
  return cmd;
}

/** The pattern the command names (its first argument: a pattern, or line's location: a
 * function without its line number, a file with it), when it names one. */
export function patternOf(cmd: PeekaCommand, argv: string[]): string | undefined {
  if (!["pattern", "location"].includes(cmd.arguments?.[0]?.name ?? "")) return undefined;
  const takesValue = new Set<string>();
  for (const spec of cmd.options ?? []) {
    if (!/[<[]/.test(spec.flags)) continue;
    for (const flag of spec.flags.split(/[ ,]+/)) if (flag.startsWith("-")) takesValue.add(flag);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    // line's module.func:N names a function; its file.py:N waits for that line's function
    if (!arg.startsWith("-")) return /\.py:\d+$/.test(arg) ? arg : arg.replace(/:\d+$/, "");
    if (takesValue.has(arg)) i++;
  }
  return undefined;
}

/** Commands whose observation is listed in the agent's "watches" entry once in place. */
const LISTED = new Set(["watch", "stack", "monitor", "trace", "tt", "line"]);

/** The exit status the shell would give: the code, or 128 + the signal that ended it. */
export function exitStatus(status: Deno.CommandStatus): number {
  if (status.signal === null) return status.code;
  const numbers: Record<string, number> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGABRT: 6,
    SIGKILL: 9,
    SIGSEGV: 11,
    SIGPIPE: 13,
    SIGTERM: 15,
  };
  return 128 + (numbers[status.signal] ?? status.code - 128);
}

/** Whether this process is in its terminal's foreground group: then a Ctrl-C at the terminal
 * reached the script too (same group), and forwarding it would be a second one. */
function terminalForeground(): boolean {
  const f = statFields("self");
  return f !== null && Number(f[5]) > 0 && f[5] === f[2]; // tpgid == pgrp
}

const FORWARDED: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/**
 * Ctrl-C, SIGTERM and SIGHUP go to the script (a terminal's Ctrl-C already did) and peeka waits
 * for it to exit, printing what the command sees meanwhile; the third signal kills the script
 * (SIGKILL). peeka never exits before its script: a killed peeka (SIGKILL) leaves the script
 * running without instrumentation (the agent ends the command when its connection drops).
 */
function forwardSignals(child: Deno.ChildProcess): () => void {
  let count = 0;
  const handlers = FORWARDED.map((sig) => {
    const handler = () => {
      count++;
      try {
        if (count >= 3) child.kill("SIGKILL");
        else if (sig !== "SIGINT" || !terminalForeground()) child.kill(sig);
      } catch { /* exited */ }
    };
    Deno.addSignalListener(sig, handler);
    return [sig, handler] as const;
  });
  return () => handlers.forEach(([sig, h]) => Deno.removeSignalListener(sig, h));
}

/** Runs one command line through the CLI's own parser and runner (as the user typed it). */
async function runCommandLine(registry: Registry, argv: string[]): Promise<number> {
  let status = 0;
  await buildProgram(registry, "peeka", (code) => (status = code)).parseAsync(argv, {
    from: "user",
  });
  return status;
}

/** Parses the command line as the CLI will, and builds its request, without running it: a
 * usage error is said before the script starts. */
async function checkCommandLine(registry: Registry, cmd: PeekaCommand, argv: string[]) {
  const program = buildProgram(registry, "peeka", () => {});
  const sub = program.commands.find((c) => c.name() === cmd.name)!;
  sub.configureOutput({ writeErr: () => {}, outputError: () => {} });
  sub.action((...params: unknown[]) => {
    const args = (params.slice(0, -2) as (string | undefined)[]).filter((a) => a !== undefined);
    cmd.request?.((params.at(-1) as Command).opts(), args as string[]);
  });
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    throw new UsageError(`${cmd.name} after --: ${e.message.replace(/^error: /, "")}`);
  }
}

/** The script's process, from its start to its exit status. */
function startScript(line: RunLine): Deno.ChildProcess {
  const boot = `exec(compile(${JSON.stringify(bootstrap)}, "<peeka run>", "exec"), ` +
    `{"__name__": "__peeka_run__"})`;
  try {
    return new Deno.Command(line.python, {
      args: ["-c", boot, line.script, ...line.scriptArgs],
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new PeekaError("NO_PYTHON", `no interpreter ${line.python}; name one with --python`);
    }
    throw e;
  }
}

/** A process that has not exited yet (the kernel still lists it, not as a zombie). */
function running(pid: number): boolean {
  const state = processState(pid);
  return state !== null && !"ZX".includes(state);
}

/** After the script ended: how long the command may take to print its last observations. */
const COMMAND_END_MS = 5000;

async function runScript(ctx: CommandContext, self: PeekaCommand): Promise<number> {
  const parsed = (ctx.args as unknown[]).flat() as string[]; // the variadic argument
  const line = splitRunLine(parsed, String(ctx.opts.python ?? "python3"));
  const cmd = commandFor(ctx.registry, line.command[0]);
  await checkCommandLine(ctx.registry, cmd, line.command);
  try {
    Deno.statSync(line.script);
  } catch {
    throw new UsageError(`no script ${line.script}`);
  }
  // Signals are this command's to handle (forwarded to the script), not the usual guard's:
  // the first Ctrl-C must not end peeka or the command while the script still runs.
  currentGuard()?.uninstall();
  const child = startScript(line);
  const stopForwarding = forwardSignals(child);
  try {
    return await observe(ctx, self, cmd, line, child);
  } catch (e) {
    try {
      child.kill("SIGKILL"); // the script must not run on with nobody watching what it was given
    } catch { /* exited */ }
    await child.status;
    throw e;
  } finally {
    stopForwarding();
  }
}

/** What the agent's pacing call has said so far, and the command started on its word. */
class Pacing {
  readonly stop = new AbortController();
  command: Promise<number> | null = null;
  commandStatus: number | null = null;
  /** The script was let go with the command in place. */
  started = false;
  /** The pattern the script never defined (the command never started). */
  neverDefined: string | null = null;
  /** Settles when the command ended before the script was let go: it could not start. */
  readonly endedEarly: Promise<void>;
  private endEarly: () => void = () => {};

  constructor(private ctx: CommandContext, private argv: string[]) {
    this.endedEarly = new Promise((r) => (this.endEarly = r));
  }

  onFrame = (f: Frame) => {
    const data = (f.data ?? {}) as Record<string, unknown>;
    if (f.event === "run_arm" && !this.command) {
      this.command = runCommandLine(this.ctx.registry, this.argv)
        .catch(() => 1)
        .then((status) => this.commandEnded(status));
    } else if (f.event === "run_started") {
      this.started = true;
    } else if (f.event === "run_waiting") {
      this.ctx.out.status(`waiting for the script to define ${data.pattern}`);
    } else if (f.event === "run_script_done") {
      if (!data.armed) this.neverDefined = String(data.pattern ?? "");
      // The command stops by itself (its observations were told to); then the script may exit.
      void this.commandEnd().then(() => this.stop.abort());
    }
  };

  /** The command's end, or COMMAND_END_MS, whichever comes first. */
  commandEnd(): Promise<unknown> {
    return Promise.race([this.command ?? Promise.resolve(0), sleep(COMMAND_END_MS)]);
  }

  private commandEnded(status: number): number {
    this.commandStatus = status;
    if (!this.started) this.endEarly();
    return status;
  }
}

async function observe(
  ctx: CommandContext,
  self: PeekaCommand,
  cmd: PeekaCommand,
  line: RunLine,
  child: Deno.ChildProcess,
): Promise<number> {
  const pid = child.pid;
  const launched = await launchAgent(pid, Number(ctx.opts.timeout ?? 10000), () => running(pid));
  ctx.out.event("run_started", { pid, script: line.script, command: line.command });
  const agent = await AgentClient.connect(launched.socket);
  const argv = [...line.command, "--pid", String(pid), ...(ctx.out.json ? ["--json"] : [])];
  const pacing = new Pacing(ctx, argv);
  const request = {
    pattern: patternOf(cmd, line.command.slice(1)),
    command: cmd.name,
    listed: LISTED.has(cmd.name),
  };
  try {
    // The connection ends with the script: what the pacing call says then is not news.
    const paced = callCommand(agent, self, request, {
      onFrame: pacing.onFrame,
      signal: pacing.stop.signal,
    }).then(() => null, (e: unknown) => e);
    const first = await Promise.race([
      child.status,
      pacing.endedEarly.then(() => null),
      // the pacing call ended: as it should once the script ran, else the script must go
      paced.then((
        e,
      ) => (pacing.started || pacing.neverDefined !== null ? child.status : e ?? null)),
    ]);
    if (first === null || !("success" in (first as object))) {
      return await abandon(child, pacing, first);
    }
    const status = exitStatus(first as Deno.CommandStatus);
    await paced;
    await pacing.commandEnd();
    ctx.out.event("run_exited", { pid, status }, `the script exited with status ${status}`);
    return finalStatus(ctx, status, pacing);
  } finally {
    agent.close();
  }
}

/** The command could not start (it said why) or the pacing failed: the script, still held
 * before the command's code, is killed. */
async function abandon(child: Deno.ChildProcess, pacing: Pacing, error: unknown): Promise<number> {
  try {
    child.kill("SIGKILL");
  } catch { /* exited */ }
  await child.status;
  pacing.stop.abort();
  if (error) throw error;
  return pacing.commandStatus || 1;
}

/** The script's status; a script that succeeded while its command failed (or never found what
 * it names) is a failure too. */
function finalStatus(ctx: CommandContext, status: number, pacing: Pacing): number {
  if (pacing.neverDefined !== null) {
    ctx.out.error(
      "run",
      `the script never defined ${pacing.neverDefined}: nothing was observed (check the name)`,
      { code: "NOT_FOUND" },
    );
    return status || 1;
  }
  return status === 0 && pacing.commandStatus ? pacing.commandStatus : status;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const run: PeekaCommand = defineCommand({
  name: "run",
  summary: "Start a script with a command (watch, trace, ...) in place from its first line",
  description: "peeka run [--python PATH] script.py [args…] -- <command> [options]: the agent " +
    "is loaded before the script's first line and the command is in place before the code it " +
    "names runs; what it sees is printed until the script exits, and peeka exits with the " +
    "script's status. Nothing is installed: the interpreter runs a -c bootstrap.",
  arguments: [{ name: "script-and-command...", description: "script.py [args…] -- command …" }],
  passThroughOptions: true, // the script's own --flags are its arguments
  options: [
    { flags: "--python <path>", description: "the interpreter (default: python3 on PATH)" },
    {
      flags: "--timeout <ms>",
      description: "how long the agent may take to start",
      type: "int",
      default: 10000,
    },
  ],
  snippet,
  needsTarget: false,
  streaming: true,
  run: (ctx) => runScript(ctx, run),
});

export default run;
