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
  const whole = o.combined ? ` (all ${(o.pids as number[]).length} processes)` : "";
  const cut = o.partial ? ` (partial: the last ${Number(o.cycle_seconds).toFixed(1)} s)` : "";
  return `${clock(o.timestamp)} cycle ${o.cycle}${whole}${cut}\n${table.toString()}`;
}

type Cycle = Record<string, unknown>;
const numbers = (items: Cycle[], key: string) =>
  items.map((i) => i[key]).filter((v): v is number => typeof v === "number");

/** One function's statistics over several processes' cycles. The set's p95 is not known from
 * theirs: the largest is shown, which bounds it from above. */
function combinedStats(name: string, items: Cycle[], pids: number[]): Cycle {
  const sum = (key: string) => numbers(items, key).reduce((a, b) => a + b, 0);
  const calls = sum("calls");
  const fail = sum("fail");
  const weighted = items.reduce((a, i) => a + Number(i.avg_ms ?? 0) * Number(i.calls ?? 0), 0);
  const extreme = (key: string, pick: (...v: number[]) => number) =>
    numbers(items, key).length ? pick(...numbers(items, key)) : null;
  return {
    type: "observation",
    combined: true,
    pids,
    func_name: name,
    timestamp: extreme("timestamp", Math.max),
    cycle: extreme("cycle", Math.max),
    calls,
    count: calls,
    success: sum("success"),
    fail,
    fail_rate: calls ? Math.round((fail / calls) * 1e4) / 1e4 : 0,
    avg_ms: calls ? weighted / calls : null,
    min_ms: extreme("min_ms", Math.min),
    max_ms: extreme("max_ms", Math.max),
    p95_ms: extreme("p95_ms", Math.max),
  };
}

/** The set's statistics per function, from each process's latest cycle. */
function combineCycles(byPid: Map<number, Cycle[]>): Cycle[] {
  const perFunction = new Map<string, Cycle[]>();
  for (const items of byPid.values()) {
    const latest = new Map(items.map((i) => [String(i.func_name), i]));
    for (const [name, item] of latest) {
      perFunction.set(name, [...(perFunction.get(name) ?? []), item]);
    }
  }
  const pids = [...byPid.keys()].sort((a, b) => a - b);
  return [...perFunction].map(([name, items]) => combinedStats(name, items, pids));
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
  // Over several processes: -n is a number of cycles (of time) for each, plus the set's view.
  fleet: { timesPerProcess: true, combine: combineCycles },
});
