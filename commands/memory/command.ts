// memory: RSS and peak, collector counters, top object types; --trace N for allocation sites;
// --growth D for what grew between two heap censuses; --by-module; --gc / --malloc-trim.
import { oursLeftOut } from "../../core/heap_report.ts";
import { defineCommand, type Options, UsageError } from "../../core/command.ts";
import snippet from "./snippet.py" with { type: "text" };

const mib = (n: unknown) =>
  n === null || n === undefined ? "?" : `${(Number(n) / 1048576).toFixed(1)} MiB`;
const kib = (n: unknown) => `${(Number(n) / 1024).toFixed(1)} KiB`;
const signed = (n: number, text = String(n)) => (n > 0 ? "+" : "") + text;

type Row = Record<string, number | string>;

/** "2s", "500ms", "1m", "1.5" (seconds) → seconds. */
export function durationSeconds(text: unknown, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(text).trim());
  const unit = { ms: 0.001, s: 1, m: 60 }[m?.[2] ?? "s"] ?? 1;
  const seconds = m ? Number(m[1]) * unit : NaN;
  if (!(seconds > 0 && seconds <= 3600)) {
    throw new UsageError(
      `${flag} takes a duration above 0 and up to 1h (e.g. 2s, 500ms), not '${text}'`,
    );
  }
  return seconds;
}

/** The request: one action at a time (--growth may take a bare --trace: the sites of its window). */
function request(opts: Options): Record<string, unknown> {
  const growth = opts.growth === undefined ? null : durationSeconds(opts.growth, "--growth");
  const reclaim = Boolean(opts.gc || opts.mallocTrim);
  const actions = [
    growth !== null,
    Boolean(opts.byModule),
    reclaim,
    typeof opts.trace === "number",
  ];
  if (actions.filter(Boolean).length > 1) {
    throw new UsageError(
      "one of --growth (with a bare --trace), --by-module, --gc/--malloc-trim, --trace N",
    );
  }
  if (opts.trace === true && growth === null) {
    throw new UsageError("--trace takes seconds (--trace 10), or goes bare with --growth");
  }
  if (opts.summary && !reclaim) throw new UsageError("--summary goes with --gc or --malloc-trim");
  return {
    trace: opts.trace ?? null,
    nframe: opts.nframe,
    limit: opts.limit,
    growth,
    by_module: Boolean(opts.byModule),
    reclaim,
    gc: Boolean(opts.gc),
    malloc_trim: Boolean(opts.mallocTrim),
    summary: Boolean(opts.summary),
  };
}

function renderTrace(data: Record<string, unknown>, seconds: unknown): string[] {
  return [
    `tracemalloc over ${seconds} s: ${mib(data.traced_bytes)} traced (peak ${
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
}

const gil = (d: Record<string, unknown>) =>
  `the GIL held ${d.gil_ms} ms in all, ${d.gil_max_ms} ms at most (released ${d.gil_releases} times)`;

function renderGrowth(data: Record<string, unknown>): string[] {
  if (data.interrupted) return ["interrupted before the second walk"];
  const [before, after] = [data.before, data.after] as Record<string, number>[];
  const typeRow = (r: Row) =>
    `  ${signed(Number(r.count_diff)).padStart(9)} ${
      signed(Number(r.bytes_diff), kib(r.bytes_diff)).padStart(13)
    } ${signed(Number(r.count_per_min)).padStart(11)} ${
      signed(Number(r.bytes_per_min), kib(r.bytes_per_min)).padStart(14)
    }  ${r.type} (${r.count})`;
  const lines = [
    `heap growth over ${data.seconds} s: ${before.objects} → ${after.objects} tracked objects, ${
      mib(before.bytes)
    } → ${mib(after.bytes)} (shallow)`,
    `two walks of ${(data.walk_ms as number[]).join(" and ")} ms, ${
      gil(data)
    }; ${data.total_ms} ms in all`,
    "     count         bytes   count/min      bytes/min  type (count now)",
    ...(data.grew as Row[]).map(typeRow),
  ];
  if (!(data.grew as Row[]).length) lines.push("  (nothing grew)");
  if ((data.shrank as Row[]).length) lines.push("shrank:", ...(data.shrank as Row[]).map(typeRow));
  lines.push(`(${data.counted})`);
  if (data.trace) {
    lines.push(...renderTrace(data.trace as Record<string, unknown>, data.seconds));
  }
  return lines;
}

function renderByModule(data: Record<string, unknown>): string[] {
  return [
    `${data.objects} tracked objects, ${
      mib(data.bytes)
    } (shallow), types from ${data.module_count} modules; ${gil(data)}`,
    "       count         bytes  module (its biggest types)",
    ...(data.modules as Record<string, unknown>[]).map((r) =>
      `  ${String(r.count).padStart(10)} ${kib(r.bytes).padStart(13)}  ${r.module} (${
        (r.top_types as string[]).join(", ")
      })`
    ),
    "biggest containers:",
    ...(data.containers as Row[]).map((r) =>
      `  ${kib(r.bytes).padStart(12)} ${String(r.len).padStart(9)} items  ${r.type}  ${
        r.referenced_from ?? "(no owner found: held from C, or beyond 8 steps or the 3 s budget)"
      }`
    ),
    `(${data.counted})`,
  ];
}

function renderReclaim(data: Record<string, unknown>): string[] {
  const lines = (data.steps as Record<string, unknown>[]).map((s) => {
    const what = s.step === "gc"
      ? `gc.collect: ${
        (s.collected as number[]).join("/")
      } unreachable by generation, ${s.uncollectable} in gc.garbage`
      : `malloc_trim(0) (${s.libc}): ${s.released ? "memory given back" : "nothing to give back"}`;
    return `${what}; RSS ${mib(s.rss_before)} → ${mib(s.rss_after)} (${s.ms} ms)`;
  });
  const imported = data.modules_imported as string[];
  if (imported.length) lines.push(`imported into the target: ${imported.join(", ")}`);
  if (data.summary) lines.push(...renderOverview(data.summary as Record<string, unknown>));
  return lines;
}

function renderOverview(data: Record<string, unknown>): string[] {
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
  ];
}

export default defineCommand({
  name: "memory",
  summary:
    "Memory at a glance; what grows (--growth 2s); --trace N; --by-module; --gc; --malloc-trim",
  description:
    "Without options: RSS and peak, garbage collector counters and thresholds, the object " +
    "types with most instances and most bytes. --growth D: two walks of the objects the collector " +
    "tracks D apart, by type (count, shallow bytes), and what grew at what rate: no tracemalloc, " +
    "the GIL released every 20 000 objects, no code of the target run (sizes from C __sizeof__ only). " +
    "--trace N: tracemalloc runs for N seconds, then is stopped again (left running if it already " +
    "was). --gc runs gc.collect(): finalizers (__del__, weakref callbacks) of what it frees are the " +
    "target's code and run. --malloc-trim imports ctypes into the target if it had not (glibc only).",
  options: [
    {
      flags: "--growth <duration>",
      description: "what grew between two heap walks this far apart (2s, 500ms)",
    },
    {
      flags: "--trace [seconds]",
      description: "trace allocations for this long; bare, with --growth: the sites of its window",
      type: "float",
    },
    {
      flags: "--nframe <n>",
      description: "frames kept per allocation (with --trace)",
      type: "int",
      default: 1,
    },
    {
      flags: "--by-module",
      description:
        "objects by the module defining their type; the biggest containers and their owner",
    },
    {
      flags: "--gc",
      description: "gc.collect() each generation, RSS before/after (runs finalizers: target code)",
    },
    {
      flags: "--malloc-trim",
      description: "glibc malloc_trim(0), RSS before/after (imports ctypes into the target)",
    },
    { flags: "--summary", description: "with --gc/--malloc-trim: the heap summary after" },
    { flags: "--limit <n>", description: "rows per table", type: "int", default: 20 },
  ],
  snippet,
  libs: ["heap", "referrers"],
  request,
  // --trace N: tracemalloc runs N seconds first; --growth D: the window; a heap walk takes 1-2 s
  // per 10^6 objects (measured, bench/memory.ts): room for two of a 10^7-object heap
  workMs: (r) =>
    typeof r.trace === "number"
      ? r.trace * 1000
      : r.growth
      ? Number(r.growth) * 1000 + 40000
      : r.reclaim && !r.summary
      ? 0
      : 20000,
  render(data) {
    if (data.action === "trace") return renderTrace(data, data.seconds).join("\n");
    if (data.action === "growth") return [...renderGrowth(data), ...oursLeftOut(data)].join("\n");
    if (data.action === "by_module") {
      return [...renderByModule(data), ...oursLeftOut(data)].join("\n");
    }
    if (data.action === "reclaim") return renderReclaim(data).join("\n");
    return [...renderOverview(data), ...oursLeftOut(data)].join("\n");
  },
});
