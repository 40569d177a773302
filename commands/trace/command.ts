// trace: the call tree under a function, with total and own time per node.
import { defineCommand } from "../../core/command.ts";
import { clock, printFrame } from "../../core/stream.ts";
import snippet from "./snippet.py" with { type: "text" };
import {
  atLeast,
  conditionOption,
  observedRequest,
  PATTERN_ARGUMENT,
  positive,
  rateOption,
  rateRequest,
  STRICT_OPTION,
  timesOption,
} from "../../core/usage.ts";

export interface TraceNode {
  function: string;
  filename: string | null;
  lineno: number | null;
  count: number;
  total_ms: number;
  self_ms: number;
  /** time suspended at awaits (coroutines, async generator steps), inside total_ms */
  awaiting_ms?: number;
  min_ms?: number;
  max_ms?: number;
  raised: number;
  slowest: boolean;
  /** total_ms as a share of the root's duration (unless --percent false) */
  percent?: number;
  /** --expand gave this node -d levels of its own */
  expanded?: boolean;
  children: TraceNode[];
}

const FALSE = /^(false|0|no|off)$/i;
const ms = (n: unknown) => `${Number(n).toFixed(Number(n) < 10 ? 3 : 1)}ms`;

/** " (own 1.2ms)", " (own 0.1ms, awaiting 50.3ms)", " (awaiting 50.3ms)" or "". */
function ownAndAwaiting(own: unknown, awaiting: unknown, showOwn: boolean): string {
  const parts = [
    ...(showOwn ? [`own ${ms(own)}`] : []),
    ...(Number(awaiting) > 0 ? [`awaiting ${ms(awaiting)}`] : []),
  ];
  return parts.length ? ` (${parts.join(", ")})` : "";
}

function nodeLabel(n: TraceNode): string {
  return `[${ms(n.total_ms)}]` + (n.percent === undefined ? "" : ` [${n.percent.toFixed(1)}%]`) +
    ` ${n.function}()` +
    (n.count > 1 ? ` ×${n.count}` : "") +
    ownAndAwaiting(n.self_ms, n.awaiting_ms, n.children.length > 0) +
    (n.raised ? ` !raised${n.raised > 1 ? " ×" + n.raised : ""}` : "") +
    (n.expanded ? "  (expanded)" : "") +
    (n.slowest ? "  ← slowest" : "");
}

/** The tree as the seed draws it: `---[125.3ms] root(), then +--- / `--- per child. */
export function renderTree(o: Record<string, unknown>): string {
  const thread = (o.thread ?? {}) as { name?: string };
  const exc = o.exception as { type: string; message: string } | null;
  const lines = [
    `${clock(o.timestamp)} ${o.func_name} #${o.count} thread=${thread.name ?? "?"}` +
    (o.task ? ` task=${o.task}` : "") +
    (exc ? ` raised ${exc.type}: ${exc.message}` : ""),
    `\`---[${ms(o.duration_ms)}] ${o.func_name}()` +
    ownAndAwaiting(o.self_time_ms, o.awaiting_ms, true),
  ];
  const walk = (nodes: TraceNode[], indent: string) => {
    nodes.forEach((n, i) => {
      const last = i === nodes.length - 1;
      lines.push(`${indent}${last ? "`" : "+"}---${nodeLabel(n)}`);
      walk(n.children, indent + (last ? "    " : "|   "));
    });
  };
  walk(o.call_tree as TraceNode[], "    ");
  if (Number(o.nodes_cut) > 0) {
    lines.push(`    (${o.nodes_cut} calls not shown: more than the node limit)`);
  }
  if (o.expand_next) lines.push(`    (the next calls trace deeper under ${o.expand_next})`);
  return lines.join("\n");
}

export default defineCommand({
  name: "trace",
  summary: "Trace the call tree under a function, with the time spent in each call",
  description:
    "For each traced call: every function it calls (to --depth levels), aggregated per caller " +
    "(a call repeated in a loop is one node with its count), with total and own time. " +
    "Only the thread inside a traced call is profiled, and only while it is. " +
    "An awaited coroutine is one call, its time suspended shown apart (awaiting). " +
    "--expand goes deeper without restarting: 'slowest' gives the bottom of each tree's slowest " +
    "branch -d more levels in the next calls; module.func[,module.g] gives those functions " +
    "-d levels of their own wherever they appear.",
  arguments: [PATTERN_ARGUMENT],
  options: [
    {
      flags: "-d, --depth <n>",
      description: "levels of calls under the root",
      type: "int",
      default: 3,
    },
    timesOption("traced calls"),
    conditionOption("only calls where this is true; cost is the root's time in ms"),
    STRICT_OPTION,
    {
      flags: "--skip-builtin <bool>",
      description: "leave out standard-library and C functions (true/false)",
      default: "true",
    },
    {
      flags: "--min-duration <ms>",
      description: "leave out calls shorter than this (ms)",
      type: "float",
      default: 0,
    },
    {
      flags: "--max-nodes <n>",
      description: "distinct nodes kept per tree",
      type: "int",
      default: 1000,
    },
    {
      flags: "--expand <what>",
      description: "'slowest' (drill down the slowest branch, -d levels per call) or " +
        "module.func[,module.g] (-d more levels under those functions)",
    },
    {
      flags: "--percent <bool>",
      description: "each node's share of its root's time (true/false)",
      default: "true",
    },
    rateOption("traced calls", 50),
  ],
  snippet,
  libs: ["instrument", "condition", "serialize", "observe", "threads"],
  streaming: true,
  request: (opts, args) => ({
    depth: atLeast(opts.depth, 1, "-d/--depth"),
    ...observedRequest(opts, args, "traced call"),
    skip_builtin: !FALSE.test(String(opts.skipBuiltin ?? "true")),
    min_duration: positive(opts.minDuration, "--min-duration", true),
    max_nodes: atLeast(opts.maxNodes, 2, "--max-nodes"),
    expand: opts.expand ?? null,
    percent: !FALSE.test(String(opts.percent ?? "true")),
    rate: rateRequest(opts),
  }),
  onFrame: (frame, ctx) => printFrame(frame, ctx, renderTree),
});
