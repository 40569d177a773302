// thread: every Python thread of the target with its current stack. On a process that is not
// attached it still shows the stacks, read from outside as `peeka dump` does (no agent), and
// then fails as before (NOT_ATTACHED): a script keeps its answer, a person gets the view.
import { type CommandContext, defineCommand, type Options } from "../../core/command.ts";
import snippet from "./snippet.py" with { type: "text" };

interface Frame {
  file: string;
  line: number;
  function: string;
  code: string | null;
}
interface ThreadInfo {
  ident: number;
  native_id: number | null;
  name: string;
  daemon: boolean | null;
  is_main: boolean;
  state: string;
  stack: Frame[];
  cpu_percent?: number;
  cpu_ms?: number;
  os_state?: string;
  blocked_on?: { kind: string; object: string; lock_owner?: number; joining?: string };
  event_loop?: { type: string; class: string; tasks: number };
}

function threadRequest(opts: Options): Record<string, unknown> {
  return {
    depth: opts.depth,
    ...(opts.tid !== undefined ? { tid: opts.tid } : {}),
    ...(opts.top !== undefined ? { top: opts.top, interval: opts.interval } : {}),
  };
}

/** Not attached: the `dump` view of the process (from outside, no agent, marked so); the
 * runner then fails with NOT_ATTACHED as before, whether or not the view could be shown. */
async function fromOutside(ctx: CommandContext): Promise<void> {
  const dump = ctx.registry.commands.find((c) => c.name === "dump");
  if (!dump?.run) return;
  const pid = ctx.targetPid();
  ctx.out.status(
    `process ${pid} is not attached: its stacks read from outside, with no agent (peeka dump)`,
    { source: "outside", pid },
  );
  await dump.run({ ...ctx, args: [String(pid)], opts: {} });
}

const thread = defineCommand({
  name: "thread",
  summary: "Show the target's threads and their stacks",
  description: "List every Python thread of the target (name, ident, native id, daemon, state) " +
    "with its current Python stack, innermost frame last.",
  options: [
    { flags: "--tid <ident>", description: "only the thread with this ident", type: "int" },
    {
      flags: "-n, --top <n>",
      description: "the n busiest threads by CPU over --interval (threads started from C too)",
      type: "int",
    },
    {
      flags: "--interval <ms>",
      description: "how long -n measures CPU use",
      type: "int",
      default: 200,
    },
    {
      flags: "-d, --depth <n>",
      description: "frames per stack (innermost kept)",
      type: "int",
      default: 50,
    },
  ],
  snippet,
  libs: ["threads", "aio"],
  request: threadRequest,
  workMs: (r) => (r.top !== undefined ? Number(r.interval ?? 0) : 0), // -n: CPU over --interval
  whenNotAttached: fromOutside,
  render(data) {
    const threads = (data.threads as ThreadInfo[]) ?? [];
    const lines = [
      data.top
        ? `${threads.length} busiest thread(s) over ${data.interval_ms} ms`
        : `${threads.length} thread(s)`,
    ];
    const gil = data.gil_holder as { name: string; ident: number; running_pct: number } | null;
    if (gil) {
      lines.push(
        `GIL: "${gil.name}" (ident ${gil.ident}) was running in ${gil.running_pct}% of samples`,
      );
    }
    for (const t of threads) {
      const cpu = t.cpu_percent !== undefined ? ` cpu=${t.cpu_percent}% (${t.os_state})` : "";
      lines.push(
        "",
        `"${t.name}" ident=${t.ident ?? "-"} native_id=${t.native_id ?? "?"} daemon=${
          t.daemon ?? "?"
        }` + `${t.is_main ? " main" : ""} ${t.state}${cpu}`,
      );
      const loop = t.event_loop;
      if (loop) {
        lines.push(
          `    runs an ${loop.type} event loop (${loop.class}), ${loop.tasks} pending task(s): ` +
            "see peeka tasks",
        );
      }
      const b = t.blocked_on;
      if (b) {
        lines.push(
          `    blocked in ${b.kind} on ${b.object}` +
            (b.lock_owner ? ` (lock held by thread ${b.lock_owner})` : "") +
            (b.joining ? ` (joining "${b.joining}")` : ""),
        );
      }
      for (const f of t.stack) {
        lines.push(`    File "${f.file}", line ${f.line}, in ${f.function}`);
        if (f.code) lines.push(`        ${f.code}`);
      }
    }
    return lines.join("\n");
  },
});

export default thread;
