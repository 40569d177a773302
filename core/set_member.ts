// What one process of a set (core/fanout.ts) gets before and while the command runs on it:
// its own options and arguments (its pid as the target), an attach when a --children set
// finds it unattached, and a few more tries while a worker that has just been forked is still
// importing what the command names.
import type { CommandContext, Options, PeekaCommand } from "./command.ts";
import type { Output } from "./output.ts";
import type { Member, TargetSet } from "./fleet.ts";
import { hasSocket, sessionPaths } from "./session.ts";
import { PeekaError } from "../process/errors.ts";

export type RunBase = Pick<CommandContext, "out" | "opts" | "args" | "registry">;

/** Runs a command on one pid through the CLI's single-target runner; returns its status. */
export type RunOn = (
  command: PeekaCommand,
  base: RunBase,
  pid: number,
  options: { stop?: AbortSignal; retry?: (e: unknown) => boolean },
) => Promise<number>;

/** How long a worker found later may take to load what the command names. */
const LATE_LOAD_MS = 3000;

/** The command line one process of the set sees: the set's, with its pid as the only target. */
export function memberBase(base: RunBase, command: PeekaCommand, pid: number, out: Output) {
  return {
    ...base,
    out,
    opts: { ...base.opts, pid, pids: undefined, children: undefined, inSet: true },
    args: command.arguments?.[0]?.name === "pid" ? [String(pid)] : base.args,
  };
}

/** A worker forked a moment ago may not have imported the watched module yet. */
export function notLoadedYet(since: number): (e: unknown) => boolean {
  return (e) =>
    e instanceof PeekaError && e.code === "NOT_LOADED" && Date.now() - since < LATE_LOAD_MS;
}

/** The options a command gets when none is given on the command line. */
function optionDefaults(cmd: PeekaCommand): Options {
  const opts: Options = {};
  for (const spec of cmd.options ?? []) {
    const long = /--([\w-]+)/.exec(spec.flags)?.[1];
    if (long && spec.default !== undefined) {
      opts[long.replace(/-(\w)/g, (_, c: string) => c.toUpperCase())] = spec.default;
    }
  }
  return opts;
}

/**
 * Makes one process of a --children set ready: one that is not attached is attached first for
 * a command that talks to its agent (a worker forked a moment ago never is), and left alone by
 * one that does not (detach). Null when it is ready; otherwise the process's status.
 */
export async function prepareMember(
  cmd: PeekaCommand,
  set: TargetSet,
  member: Member,
  base: RunBase,
  runOn: RunOn,
): Promise<number | null> {
  if (set.root === undefined || cmd.name === "attach") return null;
  if (hasSocket(sessionPaths(member.pid))) return null;
  const attach = cmd.snippet ? base.registry.commands.find((c) => c.name === "attach") : undefined;
  if (!attach) {
    base.out.status(`process ${member.pid} is not attached; left alone`);
    return 0;
  }
  const attachBase = memberBase(base, attach, member.pid, base.out);
  const status = await runOn(
    attach,
    {
      ...attachBase,
      opts: { ...optionDefaults(attach), inSet: true },
    },
    member.pid,
    {},
  );
  return status === 0 ? null : status;
}
