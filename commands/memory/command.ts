// memory: RSS and peak, collector counters, top object types; --trace N for allocation sites.
import { defineCommand } from "../../core/command.ts";
import snippet from "./snippet.py" with { type: "text" };

const mib = (n: unknown) =>
  n === null || n === undefined ? "?" : `${(Number(n) / 1048576).toFixed(1)} MiB`;
const kib = (n: unknown) => `${(Number(n) / 1024).toFixed(1)} KiB`;

export default defineCommand({
  name: "memory",
  summary: "Memory at a glance, or --trace N: top allocation sites and growth over N seconds",
  description:
    "Without --trace: RSS and peak, garbage collector counters and thresholds, the object " +
    "types with most instances and most bytes. With --trace N: tracemalloc runs for N seconds, then " +
    "is stopped again (left running if it already was).",
  options: [
    { flags: "--trace <seconds>", description: "trace allocations for this long", type: "float" },
    {
      flags: "--nframe <n>",
      description: "frames kept per allocation (with --trace)",
      type: "int",
      default: 1,
    },
    { flags: "--limit <n>", description: "rows per table", type: "int", default: 20 },
  ],
  snippet,
  libs: ["heap"],
  request: (opts) => ({ trace: opts.trace ?? null, nframe: opts.nframe, limit: opts.limit }),
  workMs: (r) => Number(r.trace ?? 0) * 1000, // --trace N: tracemalloc runs N seconds first
  render(data) {
    type Row = Record<string, number | string>;
    if (data.action === "trace") {
      const lines = [
        `tracemalloc over ${data.seconds} s: ${mib(data.traced_bytes)} traced (peak ${
          mib(data.traced_peak_bytes)
        }); ${data.tracemalloc_after}`,
        "top allocation sites:",
        ...(data.top as Row[]).map((r) =>
          `  ${kib(r.size_bytes).padStart(12)} ${String(r.count).padStart(8)}  ${r.file}:${r.line}`
        ),
        "grew the most:",
        ...(data.growth as Row[]).map((r) =>
          `  +${kib(r.size_diff_bytes).padStart(11)} ${
            String(r.count_diff).padStart(8)
          }  ${r.file}:${r.line}`
        ),
      ];
      return lines.join("\n");
    }
    const gc = data.gc as {
      enabled: boolean;
      counts: number[];
      thresholds: number[];
      tracked_objects: number;
    };
    return [
      `pid ${data.pid}: RSS ${mib(data.rss_bytes)}, peak ${mib(data.peak_rss_bytes)}`,
      `gc ${gc.enabled ? "enabled" : "DISABLED"}: counts ${gc.counts.join("/")}, thresholds ${
        gc.thresholds.join("/")
      }, ${gc.tracked_objects} tracked objects`,
      "most instances:",
      ...(data.top_by_count as Row[]).map((r) => `  ${String(r.count).padStart(10)}  ${r.type}`),
      "most bytes (shallow):",
      ...(data.top_by_size as Row[]).map((r) => `  ${kib(r.size_bytes).padStart(12)}  ${r.type}`),
    ].join("\n");
  },
});
