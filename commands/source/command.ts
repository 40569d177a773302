// source: the source of a loaded function, method, class, nested function or lambda, as the
// process runs it (Arthas `jad`), with line numbers; says loudly when the file on disk no longer
// matches the loaded code, and then shows the loaded code's bytecode, constants and names.
import { type CommandContext, defineCommand } from "../../core/command.ts";
import type { Frame } from "../../core/protocol.ts";
import snippet from "./snippet.py" with { type: "text" };

interface Lines {
  first_line: number | null;
  last_line: number | null;
  lines: string[];
}

interface Loaded {
  first_line: number;
  code_lines: number[];
  disassembly: string[];
  consts: string[];
  names: string[];
}

interface Shown extends Lines {
  name: string;
  kind: string;
  file: string;
  stale: boolean;
  stale_reason?: string;
  source_from: string | null;
  now?: Lines;
  loaded?: Loaded;
  stale_members?: { name: string; reason: string; loaded: Loaded }[];
  defined_from_string?: boolean;
  origin?: {
    co_filename: string;
    module: string | null;
    module_file: string | null;
    reached_from: string | null;
  };
}

/** `lines` numbered from `first_line`, as an editor shows them. */
export function numbered({ first_line, lines }: Lines): string[] {
  const first = first_line ?? 1;
  const width = String(first + lines.length - 1).length;
  return lines.map((text, i) => `${String(first + i).padStart(width)}  ${text}`);
}

function loadedView(loaded: Loaded, indent = ""): string[] {
  return [
    `${indent}loaded code: first line ${loaded.first_line}, lines ${loaded.code_lines.join(",")}`,
    `${indent}bytecode:`,
    ...loaded.disassembly.map((l) => `${indent}  ${l}`),
    `${indent}constants: ${loaded.consts.join(", ")}`,
    `${indent}names: ${loaded.names.join(", ")}`,
  ];
}

const STALE_BANNER = "!!! STALE: the file on disk no longer matches the code this process runs";

/** One object's source as a terminal shows it. */
export function renderSource(s: Shown): string {
  const range = s.last_line ? `${s.first_line}-${s.last_line}` : `${s.first_line ?? "?"}`;
  const out = [`# ${s.name} (${s.kind})  ${s.file}:${range}`];
  if (s.defined_from_string && s.origin) {
    const o = s.origin;
    out.push(
      `# defined from a string (co_filename ${o.co_filename}) ` +
        (o.module
          ? `in module ${o.module}`
          : `with globals of its own, reached from ${o.reached_from}`) +
        (o.module_file ? ` (${o.module_file})` : ""),
    );
  }
  if (s.stale) out.push(`${STALE_BANNER} (${s.stale_reason})`);
  if (s.source_from && s.source_from !== "file") out.push(`# text from ${s.source_from}`);
  if (s.lines.length) {
    if (s.stale) out.push("the file now:");
    out.push(...numbered(s));
  }
  if (s.now) out.push("the file now holds it here:", ...numbered(s.now));
  if (s.loaded) out.push(...loadedView(s.loaded));
  for (const m of s.stale_members ?? []) {
    out.push(`${m.name}: ${m.reason}`, ...loadedView(m.loaded, "  "));
  }
  return out.join("\n");
}

function printSource(frame: Frame, ctx: CommandContext): void {
  const { id: _id, ...shown } = frame;
  if (ctx.out.json) ctx.out.line(shown);
  else ctx.out.text(renderSource(shown as unknown as Shown));
}

export default defineCommand({
  name: "source",
  summary: "Show the source of a loaded function, method or class, as the process runs it",
  description: "module.func, module.Class, module.Class.method, module.func.<locals>.inner or " +
    "module.func.<lambda>, with line numbers. The file is read from disk and compiled (not run) " +
    "to check it still matches the loaded code; when it does not, that is said and the loaded " +
    "bytecode, constants and names are shown. No code of the target runs.",
  arguments: [{
    name: "pattern",
    description: "e.g. myapp.views.index, myapp.models.User",
    required: true,
  }],
  snippet,
  libs: ["names", "classes", "codes"],
  request: (_opts, args) => ({ pattern: args[0] }),
  onFrame: printSource,
  render(data) {
    const more = Number(data.total) > Number(data.count) ? ` (of ${data.total})` : "";
    const stale = Number(data.stale) ? `, ${data.stale} STALE` : "";
    const imported = (data.imported as string[]).length
      ? `; imported into the target to disassemble: ${(data.imported as string[]).join(", ")}`
      : "";
    return `${data.count}${more} shown${stale}${imported}`;
  },
});
