// top: which functions the target spends its time in, sampled from inside the agent.
import { defineCommand, UsageError } from "../../core/command.ts";
import { printFrame } from "../../core/stream.ts";
import { type Collapsed, flameGraphSvg, speedscopeJson } from "../../core/flamegraph.ts";
import snippet from "./snippet.py" with { type: "text" };

interface Row {
  function: string;
  file: string;
  line: number;
  own: number;
  total: number;
  own_pct: number;
  total_pct: number;
}

/** "10ms", "2s", "1.5" (in the given unit) → that unit. */
export function parseDuration(text: unknown, unit: "ms" | "s"): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(text).trim());
  if (!m) throw new UsageError(`not a duration: '${text}' (e.g. 10ms, 5s)`);
  const value = Number(m[1]);
  const ms = m[2] === "ms"
    ? value
    : m[2] === "s"
    ? value * 1000
    : m[2] === "m"
    ? value * 60000
    : unit === "ms"
    ? value
    : value * 1000;
  return unit === "ms" ? ms : ms / 1000;
}

function renderTable(o: Record<string, unknown>, tty: boolean): string {
  const rows = o.functions as Row[];
  const head = `${o.final ? "final" : "top"}: ${o.thread_samples} samples over ${o.seconds}s` +
    ` (${o.idle_skipped} idle skipped, sampling cost ${o.sampling_cpu_ms} ms CPU)`;
  const lines = [
    head,
    "  %Own  %Total   Own  Total  Function (file:line)",
    ...rows.map((r) =>
      `${r.own_pct.toFixed(1).padStart(6)} ${r.total_pct.toFixed(1).padStart(7)} ${
        String(r.own).padStart(5)
      } ${String(r.total).padStart(6)}  ${r.function} (${r.file}:${r.line})`
    ),
  ];
  // On a terminal each refresh replaces the previous table, as py-spy top does.
  return (tty && !o.final ? "\x1b[H\x1b[2J" : "") + lines.join("\n");
}

export default defineCommand({
  name: "top",
  summary: "Sample the target: the functions with most own and total time (like py-spy top)",
  description: "Samples every thread's stack each interval from inside the agent. Idle threads " +
    "(waiting in sleep, locks, sockets) are left out unless --idle. --flamegraph writes the stacks " +
    "as an SVG flame graph (or speedscope JSON with --format speedscope).",
  options: [
    {
      flags: "-i, --interval <time>",
      description: "time between samples, e.g. 10ms",
      default: "10ms",
    },
    {
      flags: "-d, --duration <time>",
      description: "stop after this long, e.g. 5s (default: Ctrl-C)",
    },
    { flags: "--refresh <time>", description: "how often the table is sent", default: "1s" },
    { flags: "--limit <n>", description: "functions shown", type: "int", default: 20 },
    { flags: "--idle", description: "include threads that are waiting" },
    {
      flags: "--flamegraph <file>",
      description: "write the sampled stacks to this file when done",
    },
    {
      flags: "--format <fmt>",
      description: "file format for --flamegraph: svg or speedscope",
      default: "svg",
    },
  ],
  snippet,
  libs: ["threads"],
  streaming: true,
  request: (opts) => {
    if (!["svg", "speedscope"].includes(String(opts.format))) {
      throw new UsageError(`--format must be svg or speedscope, not '${opts.format}'`);
    }
    return {
      interval_ms: parseDuration(opts.interval, "ms"),
      duration: opts.duration === undefined ? null : parseDuration(opts.duration, "s"),
      refresh: parseDuration(opts.refresh, "s"),
      limit: opts.limit,
      idle: Boolean(opts.idle),
    };
  },
  onFrame: (frame, ctx) => {
    if (frame.type === "profile") {
      const file = ctx.opts.flamegraph as string | undefined;
      if (!file) return;
      const stacks = frame.stacks as Collapsed;
      const title =
        `peeka top: pid ${ctx.targetPid()}, ${frame.samples} samples every ${frame.interval_ms} ms`;
      Deno.writeTextFileSync(
        file,
        ctx.opts.format === "speedscope"
          ? speedscopeJson(stacks, title)
          : flameGraphSvg(stacks, title),
      );
      ctx.out.status(`wrote ${file} (${frame.samples} samples, ${stacks.length} distinct stacks)`, {
        file,
        format: ctx.opts.format,
      });
      return;
    }
    printFrame(frame, ctx, (o) => renderTable(o, !ctx.out.json));
  },
});
