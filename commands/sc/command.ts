// sc: search the classes already loaded in the target (nothing is imported).
import { defineCommand } from "../../core/command.ts";
import snippet from "./snippet.py" with { type: "text" };

interface ClassInfo {
  name: string;
  module?: string;
  file?: string | null;
  line?: number | null;
  bases?: string[];
  mro?: string[];
  methods?: string[];
  signature?: string | null;
  doc?: string | null;
}

export default defineCommand({
  name: "sc",
  summary: "Search loaded classes by pattern, e.g. 'myapp.*Service'",
  description: "Wildcards (* ?) match the full name module.Class; a pattern without a dot " +
    "matches class names in every module. Only what is loaded is searched: nothing is imported.",
  arguments: [{
    name: "pattern",
    description: "class pattern, e.g. 'myapp.*Service'",
    required: true,
  }],
  options: [
    {
      flags: "-d, --detail",
      description: "module, file:line, bases, MRO, methods, __init__ signature",
    },
    { flags: "--limit <n>", description: "at most n classes", type: "int", default: 50 },
  ],
  snippet,
  libs: ["classes"],
  request: (opts, args) => ({ pattern: args[0], detail: Boolean(opts.detail), limit: opts.limit }),
  render(data) {
    const classes = data.classes as ClassInfo[];
    if (!classes.length) {
      return `no loaded class matches '${data.pattern}' (peeka never imports: is its module loaded?)`;
    }
    const lines: string[] = [];
    for (const c of classes) {
      if (!c.mro) {
        lines.push(c.name);
        continue;
      }
      lines.push(
        c.name,
        `    file: ${c.file ?? "?"}:${c.line ?? "?"}`,
        `    bases: ${c.bases!.join(", ")}`,
        `    mro: ${c.mro.join(" → ")}`,
        `    methods: ${c.methods!.join(", ") || "(none)"}`,
      );
      if (c.signature) lines.push(`    __init__${c.signature}`);
      if (c.doc) lines.push(`    doc: ${c.doc}`);
    }
    const more = Number(data.total) > classes.length ? ` of ${data.total} (raise --limit)` : "";
    lines.push(`${classes.length}${more} class(es)`);
    return lines.join("\n");
  },
});
