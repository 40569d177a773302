// attach: inject the agent into a running CPython process.
import { defineCommand } from "../../core/command.ts";
import { attach, hello, type Mechanism, MECHANISMS } from "../../attach/attach.ts";
import { rememberSession } from "../../core/session.ts";

export default defineCommand({
  name: "attach",
  summary: "Attach to a running Python process",
  description:
    "Inject peeka's agent into a running CPython process (no gdb, no restart) and remember it " +
    "as the current session, so later commands need no --pid.",
  arguments: [{
    name: "pid",
    description: "process id of the Python process (or --pid 12,13 / --children PID for several)",
  }],
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
  needsTarget: true,
  async run({ out, opts, args }) {
    const named = args[0] ?? (opts.pid !== undefined ? String(opts.pid) : undefined);
    const pid = Number(named);
    if (!/^\d+$/.test(named ?? "") || pid <= 0) {
      out.error(
        "attach",
        named === undefined
          ? "name the process to attach to (peeka attach PID); find Python processes with 'peeka ps'"
          : `'${named}' is not a process id; find Python processes with 'peeka ps'`,
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
    // One of a set is not "the" session: later commands without --pid would pick a random worker.
    if (!opts.inSet) rememberSession(pid);
    const concurrency = await concurrencyOf(r.socket, pid);
    out.success(
      "attach",
      { ...r, concurrency },
      (r.reused
        ? `Already attached to process ${pid} (Python ${r.python_version}); socket ${r.socket}`
        : `Attached to process ${pid} (Python ${r.python_version}) via ${r.mechanism}` +
          (r.route ? ` (${r.route} on thread ${r.thread})` : "") +
          ` in ${r.elapsed_ms} ms; socket ${r.socket}`) + `\n${describeConcurrency(concurrency)}`,
    );
    return 0;
  },
});

/** What the agent found runs the target's work (its hello's `concurrency`); null if it did not say. */
interface Concurrency {
  model: string;
  patched: string[];
  asyncio_loops: number;
  uvloop: boolean;
  agent_cooperative?: string[];
}

/** The agent's answer, kept only in the shape described (it is the target user's data). */
async function concurrencyOf(socket: string, pid: number): Promise<Concurrency | null> {
  const h = await hello(socket, 2000, pid);
  const c = h?.concurrency as Record<string, unknown> | undefined;
  if (!c || typeof c.model !== "string") return null;
  const names = (v: unknown) => Array.isArray(v) ? v.filter((x) => typeof x === "string") : [];
  const out: Concurrency = {
    model: c.model,
    patched: names(c.patched),
    asyncio_loops: Number.isInteger(c.asyncio_loops) ? c.asyncio_loops as number : 0,
    uvloop: c.uvloop === true,
  };
  if (Array.isArray(c.agent_cooperative)) out.agent_cooperative = names(c.agent_cooperative);
  return out;
}

/** One line: "Concurrency: gevent, patched: socket, thread, time" / "asyncio (1 event loop, uvloop)". */
function describeConcurrency(c: Concurrency | null): string {
  if (!c) return "Concurrency: unknown (the agent did not say)";
  const loops = c.asyncio_loops === 1 ? "1 event loop" : `${c.asyncio_loops} event loops`;
  const extra = [
    ...(c.asyncio_loops > 0 ? [loops] : []),
    ...(c.uvloop && c.asyncio_loops > 0 ? ["uvloop"] : []),
  ];
  let line = `Concurrency: ${c.model}${extra.length ? ` (${extra.join(", ")})` : ""}`;
  if (c.model === "gevent" || c.model === "eventlet") {
    line += c.patched.length ? `, patched: ${c.patched.join(", ")}` : ", nothing monkey-patched";
  }
  if (c.agent_cooperative?.length) {
    line += `; the agent could only find patched ${c.agent_cooperative.join(", ")}`;
  }
  return line;
}
