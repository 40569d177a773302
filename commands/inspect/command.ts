// inspect: an object reached by a path from a module global, a class's live instances, or the
// chains of references that keep an object (or a sample of a class's instances) alive.
import { oursLeftOut } from "../../core/heap_report.ts";
import { defineCommand, type Options, UsageError } from "../../core/command.ts";
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

/** One chain of `inspect --referrers`, root first. */
export interface Chain {
  root: { kind: string; name: string };
  text: string;
  length: number;
}

/** What `inspect --referrers` found for one object. */
export interface Referrers {
  object: { type: string; id: number };
  chains: Chain[];
  partial: boolean;
  stopped: string | null;
}

function renderReferrers(data: Record<string, unknown>): string {
  const cost = data.cost as Record<string, number>;
  const lines: string[] = data.class === undefined
    ? []
    : [`${data.count} live instance(s) of ${data.class}; chains of ${data.sample} at most:`];
  for (const r of data.referrers as Referrers[]) {
    const what = data.class === undefined ? `${data.path} (${r.object.type})` : r.object.type;
    lines.push(`${what} id=${r.object.id}: ${r.chains.length} chain(s), shortest first`);
    if (!r.chains.length && !r.partial) {
      lines.push(
        "    none: what holds it is unseen by the collector (C code, a running " +
          "frame's evaluation stack, an untracked container)",
      );
    }
    for (const c of r.chains) lines.push(`    ${c.text}`);
    if (r.partial) lines.push(`    (partial: ${r.stopped})`);
  }
  lines.push(
    `${cost.objects_scanned} objects scanned in ${cost.passes} pass(es), ${cost.total_ms} ms; ` +
      `GIL held ${cost.gil_ms} ms in all, ${cost.gil_max_ms} ms at most at a time`,
    ...oursLeftOut(data),
  );
  return lines.join("\n");
}

/** The request of `inspect --referrers`: the bounds have their own defaults there. */
function referrersRequest(opts: Options, path: string | undefined) {
  if (path !== undefined && opts.type !== undefined) {
    throw new UsageError("give a path or --type, not both");
  }
  return {
    referrers: true,
    path,
    type: opts.type,
    depth: opts.depth ?? 8,
    limit: opts.limit ?? 5,
    sample: opts.sample ?? 3,
    budget: opts.budget ?? 10,
    max_objects: opts.maxObjects ?? 100000,
  };
}

export default defineCommand({
  name: "inspect",
  summary:
    "Show an object by path (myapp.settings.CACHE.stats), a class's live instances, or what keeps an object alive",
  description:
    "The path starts with a loaded module; then .attribute, [index] and ['key'] steps. " +
    "Nothing is evaluated: attributes are read without __getattr__ (a property's getter runs). " +
    "--referrers runs none of the target's code.",
  arguments: [{ name: "path", description: "e.g. myapp.settings.CACHE['users']" }],
  options: [
    {
      flags: "-x, --depth <n>",
      description:
        "how deep to expand the value (default 2); with --referrers the longest chain (default 8)",
      type: "int",
    },
    { flags: "--instances", description: "the path names a class: list its live instances" },
    {
      flags: "--limit <n>",
      description: "instances shown (default 10); with --referrers chains per object (default 5)",
      type: "int",
    },
    {
      flags: "--referrers",
      description: "the chains of references that keep the object alive, from a root (module " +
        "global, class attribute, thread's frame local...), shortest first",
    },
    {
      flags: "--type <class>",
      description: "with --referrers: a sample of this class's instances",
    },
    {
      flags: "--sample <n>",
      description: "with --type: instances looked at (default 3)",
      type: "int",
    },
    {
      flags: "--budget <seconds>",
      description: "with --referrers: time allowed before a partial answer (default 10)",
      type: "float",
    },
    {
      flags: "--max-objects <n>",
      description: "with --referrers: objects one search keeps at most (default 100000)",
      type: "int",
    },
  ],
  snippet,
  libs: ["serialize", "heap", "referrers"],
  request: (opts, args) => {
    if (opts.referrers) return referrersRequest(opts, args[0]);
    if (args[0] === undefined) {
      throw new UsageError("a path is required, e.g. myapp.settings.CACHE");
    }
    if (opts.type !== undefined) throw new UsageError("--type goes with --referrers");
    return {
      path: args[0],
      depth: opts.depth ?? 2,
      instances: Boolean(opts.instances),
      limit: opts.limit ?? 10,
    };
  },
  workMs: (r) => (r.referrers ? 1000 * Number(r.budget) : 0),
  render(data) {
    if (data.referrers) return renderReferrers(data);
    if (data.instances) {
      const items = data.instances as Shown[];
      return [
        `${data.count} live instance(s) of ${data.class} (${data.objects_scanned} objects scanned in ${data.scan_ms} ms)`,
        ...items.flatMap((o, i) => renderObject(o, `[${i}] `)),
        ...oursLeftOut(data),
      ].join("\n");
    }
    return [`${data.path}`, ...renderObject(data as unknown as Shown)].join("\n");
  },
});
