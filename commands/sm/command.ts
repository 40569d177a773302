// sm: search the methods of loaded classes (nothing is imported).
import { defineCommand } from "../../core/command.ts";
import snippet from "./snippet.py" with { type: "text" };

interface MethodInfo {
  name: string;
  kind: string;
  signature: string | null;
  file?: string | null;
  line?: number | null;
  decorators?: string[];
  doc?: string | null;
}

export default defineCommand({
  name: "sm",
  summary: "Search methods of loaded classes, e.g. sm myapp.models.User 'get*'",
  arguments: [
    { name: "class-pattern", description: "class pattern, e.g. myapp.models.User", required: true },
    { name: "method-pattern", description: "method pattern (default *)", required: false },
  ],
  options: [
    { flags: "--method-pattern <glob>", description: "method pattern (the seed's spelling)" },
    { flags: "-d, --detail", description: "file:line, decorators, first line of the docstring" },
    { flags: "--limit <n>", description: "at most n methods", type: "int", default: 50 },
  ],
  snippet,
  libs: ["classes"],
  request: (opts, args) => ({
    pattern: args[0],
    method_pattern: args[1] ?? opts.methodPattern ?? "*",
    detail: Boolean(opts.detail),
    limit: opts.limit,
  }),
  render(data) {
    const methods = data.methods as MethodInfo[];
    const lines = methods.map((m) => {
      const head = `${m.name}${m.signature ?? ""}  [${m.kind}]`;
      if (m.file === undefined) return head;
      const extra = [`    ${m.file ?? "?"}:${m.line ?? "?"}`];
      if (m.decorators?.length) extra.push(`    decorators: ${m.decorators.join(", ")}`);
      if (m.doc) extra.push(`    doc: ${m.doc}`);
      return [head, ...extra].join("\n");
    });
    const more = Number(data.total) > methods.length ? ` of ${data.total} (raise --limit)` : "";
    lines.push(`${methods.length}${more} method(s) in ${data.classes} class(es)`);
    return lines.join("\n");
  },
});
