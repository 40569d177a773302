// inspect: an object reached by a path from a module global, or a class's live instances.
import { defineCommand } from "../../core/command.ts";
import { compact } from "../../core/stream.ts";
import snippet from "./snippet.py" with { type: "text" };

interface Shown {
  type: string;
  id: number;
  repr: string;
  size?: number;
  len?: number;
  value: unknown;
  attributes?: { name: string; type: string; repr: string }[];
}

function renderObject(o: Shown, indent = ""): string[] {
  const lines = [
    `${indent}${o.type} id=${o.id}${o.size !== undefined ? ` size=${o.size}B` : ""}${
      o.len !== undefined ? ` len=${o.len}` : ""
    }`,
    `${indent}    ${compact(o.value, 400)}`,
  ];
  for (const a of o.attributes ?? []) lines.push(`${indent}    .${a.name}: ${a.type} = ${a.repr}`);
  return lines;
}

export default defineCommand({
  name: "inspect",
  summary: "Show an object by path (myapp.settings.CACHE.stats) or a class's live instances",
  description:
    "The path starts with a loaded module; then .attribute, [index] and ['key'] steps. " +
    "Nothing is evaluated: attributes are read without __getattr__ (a property's getter runs).",
  arguments: [{ name: "path", description: "e.g. myapp.settings.CACHE['users']", required: true }],
  options: [
    {
      flags: "-x, --depth <n>",
      description: "how deep to expand the value",
      type: "int",
      default: 2,
    },
    { flags: "--instances", description: "the path names a class: list its live instances" },
    { flags: "--limit <n>", description: "instances shown", type: "int", default: 10 },
  ],
  snippet,
  libs: ["serialize", "heap"],
  request: (opts, args) => ({
    path: args[0],
    depth: opts.depth,
    instances: Boolean(opts.instances),
    limit: opts.limit,
  }),
  render(data) {
    if (data.instances) {
      const items = data.instances as Shown[];
      return [
        `${data.count} live instance(s) of ${data.class} (${data.objects_scanned} objects scanned in ${data.scan_ms} ms)`,
        ...items.flatMap((o, i) => renderObject(o, `[${i}] `)),
      ].join("\n");
    }
    return [`${data.path}`, ...renderObject(data as unknown as Shown)].join("\n");
  },
});
