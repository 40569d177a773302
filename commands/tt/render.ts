// tt's human output: one line per recorded call while recording, a table for --list and
// --search, a block for --show and --replay. (JSON mode prints each line as the agent sent it.)
import { clock, compact } from "../../core/stream.ts";

type Line = Record<string, unknown>;
interface ExceptionInfo {
  type: string;
  message: string;
  traceback?: { file: string; line: number; function: string }[];
}
/** The ring's numbers every tt answer carries (`store`), and a recording's stopped event. */
export interface Store {
  records: number;
  bytes: number;
  max_records: number;
  max_bytes: number;
  evicted: number;
  too_big: number;
  objects_dropped: number;
}

const ms = (v: unknown) => `${Number(v).toFixed(3)}ms`;
const outcome = (r: Line) =>
  r.success ? `-> ${compact(r.result, 120)}` : `!! ${exceptionText(r.exception as ExceptionInfo)}`;
const exceptionText = (e: ExceptionInfo | null) => e ? `${e.type}: ${e.message}` : "?";
const threadName = (r: Line) => {
  const t = r.thread as { id?: number; name?: string | null } | null;
  return t?.name ?? String(t?.id ?? "?"); // no name: a program that never imported threading
};

/** A size in bytes, short (12.3 KiB). */
export function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function recordLine(r: Line): string {
  return `[${r.index}] ${clock(r.timestamp)} ${r.func_name} ${ms(r.duration_ms)} ` +
    `thread=${threadName(r)} args=${compact(r.args, 120)} ${outcome(r)}`;
}

function storeText(s: Store | null): string {
  if (!s) return "No records are held.";
  const extra = [
    s.evicted ? `${s.evicted} evicted` : "",
    s.too_big ? `${s.too_big} too big to keep` : "",
    s.objects_dropped ? `${s.objects_dropped} kept without their objects` : "",
  ].filter(Boolean);
  return `${s.records} records, ${bytesText(s.bytes)} of ${bytesText(s.max_bytes)} ` +
    `(at most ${s.max_records} records)${extra.length ? "; " + extra.join(", ") : ""}`;
}

function table(records: Line[]): string[] {
  const rows = records.map((r) => [
    String(r.index),
    clock(r.timestamp),
    Number(r.duration_ms).toFixed(3),
    r.success ? "ok" : `!! ${(r.exception as ExceptionInfo | null)?.type ?? "?"}`,
    threadName(r),
    String(r.func_name),
    compact(r.args, 60),
  ]);
  const head = ["INDEX", "TIMESTAMP", "COST(ms)", "RESULT", "THREAD", "FUNCTION", "ARGS"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i])).join("  ");
  return [line(head), ...rows.map(line)];
}

function recordBlock(r: Line): string[] {
  const lines = [
    `[${r.index}] ${r.func_name} at ${clock(r.timestamp)}, ${ms(r.duration_ms)}, ` +
    `thread=${threadName(r)}, ${r.bytes} bytes${r.objects_kept ? ", objects kept" : ""}`,
    `    args: ${compact(r.args, 4000)}`,
    `    kwargs: ${compact(r.kwargs, 4000)}`,
  ];
  if (r.target !== null && r.target !== undefined) {
    lines.push(`    target: ${compact(r.target, 4000)}`);
  }
  lines.push(...resultLines(r));
  if (r.note) lines.push(`    note: ${r.note}`);
  const now = r.now as Line | undefined;
  if (now) {
    lines.push(`    now (${now.note}):`, `        args: ${compact(now.args, 4000)}`);
    lines.push(`        kwargs: ${compact(now.kwargs, 4000)}`);
  }
  return lines;
}

function resultLines(r: Line): string[] {
  if (r.success) return [`    result: ${compact(r.result, 4000)}`];
  const e = r.exception as ExceptionInfo | null;
  return [
    `    exception: ${exceptionText(e)}`,
    ...(e?.traceback ?? []).map((f) => `        at ${f.function} (${f.file}:${f.line})`),
  ];
}

function replayBlock(r: Line): string[] {
  const recorded = r.recorded as Line;
  return [
    `WARNING: ${r.warning}.`,
    `[${r.index}] ${r.func_name} replayed on the peeka agent's thread in ${ms(r.duration_ms)}`,
    ...resultLines(r),
    `  recorded: ${ms(recorded.duration_ms)} ${outcome(recorded)}`,
  ];
}

/** The human text of one line tt's agent side sent. */
export function renderTt(line: Line): string {
  const store = (line.store ?? null) as Store | null;
  switch (line.type) {
    case "tt_record":
      return recordLine(line);
    case "tt_list":
    case "tt_search": {
      const records = line.records as Line[];
      const what = line.type === "tt_search"
        ? [
          `${records.length} records match ${line.expression}` +
          (line.condition_errors
            ? ` (${line.condition_errors} errors: ${line.condition_error})`
            : ""),
        ]
        : [];
      return [...what, ...(records.length ? table(records) : []), storeText(store)].join("\n");
    }
    case "tt_show":
      return recordBlock(line.record as Line).join("\n");
    case "tt_replay":
      return replayBlock(line).join("\n");
    case "tt_clear":
      return `Cleared ${line.cleared} records; nothing of tt is left in the target.`;
    default:
      return compact(line, 4000);
  }
}
