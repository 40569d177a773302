// detach: stop the agent, undo every change made in the target, remove its files.
import { defineCommand } from "../../core/command.ts";
import { resolvePid } from "../../core/session.ts";
import { detachProcess } from "../../attach/detach.ts";

export default defineCommand({
  name: "detach",
  summary: "Detach from a process and restore it",
  description:
    "Undo every change peeka made in the target, stop the agent and remove its socket and files.",
  arguments: [{ name: "pid", description: "process to detach from (default: the attached one)" }],
  needsTarget: true,
  async run(ctx) {
    const pid = ctx.args[0] !== undefined
      ? Number(ctx.args[0])
      : resolvePid(ctx.opts.pid as number | undefined);
    ctx.targetPid = () => pid;
    const { restored, errors } = await detachProcess(pid, await ctx.agent());
    ctx.out.success(
      "detach",
      { pid, message: `Detached from process ${pid}`, restored, errors },
      `Detached from process ${pid}` +
        (errors.length ? ` (restore errors: ${errors.join("; ")})` : ""),
    );
    return errors.length ? 2 : 0;
  },
});
