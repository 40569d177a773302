// The command API: what a built-in or third-party command declares. A
// command is either an agent command (a Python snippet plus how to build its
// arguments and render its result) or a local one with its own `run`.

import { PeekaError } from "../process/errors.ts";
import type { Output } from "./output.ts";
import type { AgentClient, Frame } from "./protocol.ts";

export type OptionType = "string" | "int" | "float" | "boolean";

export interface OptionSpec {
  /** Commander flags, e.g. "-n, --times <n>" or "--all". */
  flags: string;
  description: string;
  type?: OptionType;
  default?: string | number | boolean;
}

export interface ArgumentSpec {
  name: string;
  description: string;
  required?: boolean;
}

export type Options = Record<string, unknown>;

/** What a command's code gets to work with. */
export interface CommandContext {
  out: Output;
  opts: Options;
  args: string[];
  /** The pid the command acts on (--pid, the remembered session, or the only attached process). */
  targetPid(): number;
  /** A connection to the target's agent (opened on first use, closed after the command). */
  agent(): Promise<AgentClient>;
  /** Every command of this run (built-ins and plugins) and the plugins that failed to load. */
  registry: Registry;
}

export interface Registry {
  commands: PeekaCommand[];
  problems: { path: string; error: string }[];
  /** The folders searched for plugins. */
  dirs?: string[];
}

export interface PeekaCommand {
  name: string;
  summary: string;
  /** A plugin's version, shown by `peeka plugins`. */
  version?: string;
  /** Where the command comes from: "built-in" or a plugin's file (set by the loader). */
  origin?: string;
  description?: string;
  arguments?: ArgumentSpec[];
  options?: OptionSpec[];
  /** Python source the agent runs for this command; must define run(ctx, args). */
  snippet?: string;
  /** Agent libraries (agent/lib/<name>.py) the snippet uses through ctx.agent.lib(name). */
  libs?: string[];
  /** Builds the snippet's arguments from the command line. */
  request?(opts: Options, args: string[]): Record<string, unknown>;
  /** Human rendering of the snippet's result (JSON mode prints the data as is). */
  render?(data: Record<string, unknown>, opts: Options): string;
  /** How long the snippet works before it answers, in ms, beyond the usual request deadline
   * (e.g. `memory --trace N`: N seconds); given the request built from the command line. */
  workMs?(request: Record<string, unknown>): number;
  /** A streaming command prints its frames (observations, events); its final result is not printed. */
  streaming?: boolean;
  /** Streamed frames (observations, events) before the result. */
  onFrame?(frame: Frame, ctx: CommandContext): void;
  /** A command that does its own work instead of calling a snippet; returns the exit status. */
  run?(ctx: CommandContext): Promise<number>;
  /** Options after the first argument are that argument's own (run's script arguments):
   * the CLI does not parse them. */
  passThroughOptions?: boolean;
  /** What the command can still show when its process is not attached (thread: the stacks
   * read from outside); the NOT_ATTACHED error follows it, so scripts keep their answer. */
  whenNotAttached?(ctx: CommandContext): Promise<void>;
  /** Whether the command acts on an attached process (adds --pid, --children). Default: true
   * when it has a snippet. */
  needsTarget?: boolean;
  /** How the command runs over several processes at once (core/fanout.ts). */
  fleet?: FleetHooks;
}

/** What a command that needs more than one merged stream over a set of processes declares. */
export interface FleetHooks {
  /** -n counts each process's own (monitor's cycles are periods of time), not the set's. */
  timesPerProcess?: boolean;
  /** The observations for the whole set, from each process's latest ones (by pid); called once
   * every running process has sent some (monitor's combined statistics). */
  combine?(byPid: Map<number, Record<string, unknown>[]>): Record<string, unknown>[];
}

/** Identity helper that gives plugin authors type checking. */
export function defineCommand(cmd: PeekaCommand): PeekaCommand {
  return cmd;
}

/** A command line that parses but makes no sense (exit status 2, code USAGE). */
export class UsageError extends PeekaError {
  constructor(message: string) {
    super("USAGE", message);
  }
}

/** A command's own failure, with the code its JSON error carries. */
export class CommandFailure extends PeekaError {}
