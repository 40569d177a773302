// tt (time tunnel): record calls of a function into a bounded ring kept in the target's agent,
// then list, show, search, replay or clear them, from this CLI or a later one.
import { defineCommand, type Options, UsageError } from "../../core/command.ts";
import { printFrame } from "../../core/stream.ts";
import {
  atLeast,
  conditionOption,
  observedRequest,
  rateOption,
  rateRequest,
  STRICT_OPTION,
  timesOption,
} from "../../core/usage.ts";
import { renderTt } from "./render.ts";
import snippet from "./snippet.py" with { type: "text" };

const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** --max-bytes: a number of bytes, or with k, m or g (KiB, MiB, GiB): 512k, 4m. */
export function parseBytes(value: unknown): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?$/i.exec(String(value).trim());
  const n = m ? Math.floor(Number(m[1]) * UNITS[m[2].toLowerCase()]) : NaN;
  if (!(n >= 1024)) {
    throw new UsageError(`--max-bytes must be a size of at least 1k (e.g. 512k, 4m), not ${value}`);
  }
  return n;
}

/** Which one thing this run does: record (a pattern) or one of the looking options. */
function mode(opts: Options, args: string[]): string {
  const chosen = [
    args[0] !== undefined && "record",
    opts.list && "list",
    opts.show !== undefined && "show",
    opts.search !== undefined && "search",
    opts.replay !== undefined && "replay",
    opts.clear && "clear",
  ].filter(Boolean) as string[];
  if (chosen.length !== 1) {
    throw new UsageError(
      chosen.length
        ? `give one of a pattern, --list, --show, --search, --replay or --clear, not ${
          chosen.join(" and ")
        }`
        : "give a pattern to record, or --list, --show N, --search EXPR, --replay N or --clear",
    );
  }
  if (opts.confirmSideEffects && chosen[0] !== "replay") {
    throw new UsageError("--confirm-side-effects goes with --replay N");
  }
  return chosen[0];
}

function request(opts: Options, args: string[]): Record<string, unknown> {
  const what = mode(opts, args);
  const depth = opts.depth === undefined ? null : atLeast(opts.depth, 0, "-x/--depth");
  switch (what) {
    case "record":
      return {
        mode: what,
        ...observedRequest(opts, args, "record"),
        depth: depth ?? 2,
        rate: rateRequest(opts),
        max_records: atLeast(opts.maxRecords, 1, "--max-records"),
        max_bytes: parseBytes(opts.maxBytes),
        keep_objects: Boolean(opts.keepObjects),
      };
    case "show":
      return { mode: what, index: atLeast(opts.show, 0, "--show"), depth };
    case "replay":
      return {
        mode: what,
        index: atLeast(opts.replay, 0, "--replay"),
        depth,
        confirm: Boolean(opts.confirmSideEffects),
      };
    case "search":
      return { mode: what, expression: String(opts.search) };
    default:
      return { mode: what };
  }
}

export default defineCommand({
  name: "tt",
  summary: "Time tunnel: record calls, then list, show, search or replay them later",
  description: "Record each call of module.func, module.Class.method or module.Class.* (index, " +
    "time, thread, arguments as they were at entry, result or exception, duration) into a ring " +
    "kept in the target until tt --clear, reset or detach, so a later peeka can look at them. " +
    "--replay calls the function again inside the target: its side effects happen again.",
  arguments: [{
    name: "pattern",
    description: "record calls of module.func, module.Class.method or module.Class.*",
  }],
  options: [
    {
      flags: "-x, --depth <n>",
      description: "how deep values are kept when recording (default 2); with --show, " +
        "how deep to show (deeper than recorded: the kept objects as they are now)",
      type: "int",
    },
    timesOption("records"),
    conditionOption("only record calls where this is true, e.g. 'params[0] > 100'"),
    STRICT_OPTION,
    rateOption("records", 1000),
    {
      flags: "--max-records <n>",
      description: "records kept; the oldest go first",
      type: "int",
      default: 100,
    },
    {
      flags: "--max-bytes <size>",
      description: "memory the records may take in the target (512k, 4m...); the oldest go first",
      default: "2m",
    },
    {
      flags: "--keep-objects",
      description: "also keep references to the call's own objects (needed by --replay; " +
        "counted in --max-bytes, they keep those objects alive)",
    },
    { flags: "-l, --list", description: "list the records held in the target" },
    { flags: "--show <index>", description: "show one record whole", type: "int" },
    {
      flags: "--search <expr>",
      description: "records where a condition is true over what was recorded, e.g. " +
        "'params[0] > 100', 'cost > 5', 'exception is not None'",
    },
    {
      flags: "--replay <index>",
      description: "call the function again with the recorded objects (a --keep-objects record), " +
        "on the agent's thread: the target's code runs, with its side effects",
      type: "int",
    },
    { flags: "--confirm-side-effects", description: "confirm --replay" },
    { flags: "--clear", description: "drop every record and stop the recordings" },
  ],
  snippet,
  libs: ["instrument", "condition", "serialize", "observe", "tunnel"],
  streaming: true,
  request,
  workMs: (r) => r.mode === "replay" ? 60_000 : 0,
  onFrame: (frame, ctx) => printFrame(frame, ctx, renderTt),
});
