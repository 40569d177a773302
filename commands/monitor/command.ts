// monitor: per-function statistics every cycle, as Arthas's monitor does.
import Table from "cli-table3";
import { defineCommand } from "../../core/command.ts";
import { clock, printFrame } from "../../core/stream.ts";
import snippet from "./snippet.py" with { type: "text" };
import { positive, STRICT_OPTION, times } from "../../core/usage.ts";

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
  arguments: [{
    name: "pattern",
    description: "module.func, module.Class.method or module.Class.*",
    required: true,
  }],
  options: [
    {
      flags: "-c, --cycle <seconds>",
      description: "length of one statistics cycle",
      type: "float",
      default: 60,
    },
    {
      flags: "-n, --times <n>",
      description: "stop after n cycles (-1: until Ctrl-C)",
      type: "int",
      default: -1,
    },
    { flags: "--condition <expr>", description: "only count calls where this is true" },
    STRICT_OPTION,
  ],
  snippet,
  libs: ["instrument", "condition"],
  streaming: true,
  request: (opts, args) => ({
    pattern: args[0],
    cycle: positive(opts.cycle, "-c/--cycle"),
    times: times(opts.times, "cycle"),
    condition: opts.condition ?? null,
    strict: Boolean(opts.strict),
  }),
  onFrame: (frame, ctx) => printFrame(frame, ctx, renderCycle),
});
