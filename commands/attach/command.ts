// attach: inject the agent into a running CPython process.
import { defineCommand } from "../../core/command.ts";
import { attach, type Mechanism, MECHANISMS } from "../../attach/attach.ts";
import { rememberSession } from "../../core/session.ts";

export default defineCommand({
  name: "attach",
  summary: "Attach to a running Python process",
  description:
    "Inject peeka's agent into a running CPython process (no gdb, no restart) and remember it " +
    "as the current session, so later commands need no --pid.",
  arguments: [{ name: "pid", description: "process id of the Python process", required: true }],
  options: [
    {
      flags: "--timeout <ms>",
      description: "how long to wait for the agent to start",
      type: "int",
      default: 10000,
    },
    {
      flags: "--via <mechanism>",
      description: `force an attach mechanism: ${MECHANISMS.join(" or ")}`,
    },
    {
      flags: "--pep768-timeout <ms>",
      description:
        "how long a PEP 768 request (3.14+) may wait for a thread to run Python before ptrace is used",
      type: "int",
      default: 300,
    },
  ],
  needsTarget: false,
  async run({ out, opts, args }) {
    const pid = Number(args[0]);
    if (!/^\d+$/.test(args[0] ?? "") || pid <= 0) {
      out.error(
        "attach",
        `'${args[0]}' is not a process id; find Python processes with 'peeka ps'`,
        { code: "BAD_PID" },
      );
      return 1;
    }
    if (opts.via !== undefined && !MECHANISMS.includes(opts.via as Mechanism)) {
      out.error("attach", `unknown mechanism '${opts.via}'; use one of: ${MECHANISMS.join(", ")}`, {
        code: "USAGE",
      });
      return 1;
    }
    out.status(`Attaching to process ${pid}`);
    const r = await attach(pid, {
      timeoutMs: opts.timeout as number,
      via: opts.via as Mechanism | undefined,
      pep768TimeoutMs: opts.pep768Timeout as number,
      onStatus: (message) => out.status(message),
    });
    rememberSession(pid);
    out.success(
      "attach",
      { ...r },
      r.reused
        ? `Already attached to process ${pid} (Python ${r.python_version}); socket ${r.socket}`
        : `Attached to process ${pid} (Python ${r.python_version}) via ${r.mechanism}` +
          (r.route ? ` (${r.route} on thread ${r.thread})` : "") +
          ` in ${r.elapsed_ms} ms; socket ${r.socket}`,
    );
    return 0;
  },
});
