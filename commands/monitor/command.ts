// monitor: per-function statistics every cycle, as Arthas's monitor does.
import Table from "cli-table3";
import { defineCommand } from "../../core/command.ts";
import { clock, printFrame } from "../../core/stream.ts";
import snippet from "./snippet.py" with { type: "text" };
import {
  conditionOption,
  observedRequest,
  PATTERN_ARGUMENT,
  positive,
  STRICT_OPTION,
  timesOption,
} from "../../core/usage.ts";

const ms = (v: unknown) => (v === null || v === undefined ? "-" : Number(v).toFixed(3));

function renderCycle(o: Record<string, unknown>): string {
  const table = new Table({
    head: ["FUNCTION", "CALLS", "SUCCESS", "FAIL", "FAIL%", "AVG ms", "MIN ms", "MAX ms", "P95 ms"],
  });
  table.push([
    String(o.func_name),
    o.calls as number,
    o.success as number,
    o.fail as number,
    (Number(o.fail_rate) * 100).toFixed(1),
    ms(o.avg_ms),
    ms(o.min_ms),
    ms(o.max_ms),
    ms(o.p95_ms),
  ]);
  return `${clock(o.timestamp)} cycle ${o.cycle}\n${table.toString()}`;
}

export default defineCommand({
  name: "monitor",
  summary: "Periodic call statistics of a function (calls, failures, latency)",
  arguments: [PATTERN_ARGUMENT],
  options: [
    {
      flags: "-c, --cycle <seconds>",
      description: "length of one statistics cycle",
      type: "float",
      default: 60,
    },
    timesOption("cycles"),
    conditionOption("only count calls where this is true"),
    STRICT_OPTION,
  ],
  snippet,
  libs: ["instrument", "condition", "observe"],
  streaming: true,
  request: (opts, args) => ({
    cycle: positive(opts.cycle, "-c/--cycle"),
    ...observedRequest(opts, args, "cycle"),
  }),
  onFrame: (frame, ctx) => printFrame(frame, ctx, renderCycle),
});
