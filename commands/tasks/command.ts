// tasks: every asyncio task of every event loop (any thread) with its await chain, and the
// greenlets of a gevent process. JSON: one `task` line per task, then the `result` summary.
import { type CommandContext, defineCommand } from "../../core/command.ts";
import { callCommand } from "../../core/call.ts";
import snippet from "./snippet.py" with { type: "text" };

interface Frame {
  file: string;
  line: number;
  function: string;
  code: string | null;
}
interface Awaiting {
  kind: string;
  remaining_s?: number | null;
  task?: string;
  name?: string | null;
  tasks?: string[];
  type?: string;
  state?: string;
  note?: string;
}
export interface Task {
  kind: "asyncio" | "greenlet";
  id: string;
  name: string | null;
  coro: string;
  state: string;
  loop?: string;
  thread?: number | null;
  stack: Frame[];
  awaiting?: Awaiting;
  awaits?: string[];
  awaited_by?: string[];
  note?: string;
  depth?: number;
  parent?: string | null;
}
interface Loop {
  id: string;
  type: string;
  class: string;
  thread: number | null;
  thread_name: string | null;
  running: boolean;
  tasks: number;
}

/** Both directions of "awaits": what the agent saw from the parent (its awaited future, a
 * gather's children, a TaskGroup's tasks) and from the child (3.14's own records). */
export function linkTasks(tasks: Task[]): void {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const add = (list: string[] | undefined, id: string) =>
    list?.includes(id) ? list : [...(list ?? []), id];
  for (const parent of tasks) {
    for (const child of parent.awaits ?? []) {
      const c = byId.get(child);
      if (c) c.awaited_by = add(c.awaited_by, parent.id);
    }
  }
  for (const child of tasks) {
    for (const parent of child.awaited_by ?? []) {
      const p = byId.get(parent);
      if (p) p.awaits = add(p.awaits, child.id);
    }
  }
}

/** The tasks in tree order (each parent before its children), with depth and parent set. A
 * task awaited by several parents sits under the first; a cycle cannot hide a task. */
export function treeOrder(tasks: Task[]): Task[] {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const placed = new Set<string>();
  const out: Task[] = [];
  const visit = (t: Task, depth: number, parent: string | null) => {
    if (placed.has(t.id)) return;
    placed.add(t.id);
    out.push({ ...t, depth, parent });
    for (const id of t.awaits ?? []) {
      const child = byId.get(id);
      if (child) visit(child, depth + 1, t.id);
    }
  };
  const isRoot = (t: Task) => !(t.awaited_by ?? []).some((id) => byId.has(id));
  for (const t of tasks) if (isRoot(t)) visit(t, 0, null);
  for (const t of tasks) visit(t, 0, null); // only cycles are left
  return out;
}

function awaitingText(a: Awaiting): string {
  switch (a.kind) {
    case "sleep":
      return a.remaining_s === null || a.remaining_s === undefined
        ? "asyncio.sleep (time left unknown)"
        : `asyncio.sleep, ${a.remaining_s.toFixed(3)} s left`;
    case "task":
      return `task ${a.name ?? a.task}`;
    case "ready":
      return "nothing: its next step is due";
    case "gather":
    case "taskgroup":
      return `${a.kind} of ${a.tasks?.length ?? 0} task(s)`;
    default:
      return `${a.type ?? a.kind} (${a.state ?? "?"})${a.note ? ` — ${a.note}` : ""}`;
  }
}

function taskLines(t: Task, indent: string): string[] {
  const label = t.kind === "greenlet" ? "greenlet" : "task";
  const lines = [`${label} ${t.name ?? t.id} [${t.state}] ${t.coro}`];
  for (const f of t.stack) {
    lines.push(`    ${f.function}  ${f.file}:${f.line}${f.code ? `  ${f.code}` : ""}`);
  }
  if (t.awaiting) lines.push(`    → awaiting ${awaitingText(t.awaiting)}`);
  if (t.note) lines.push(`    (${t.note})`);
  const below = indent.replace(/├── $/, "│   ").replace(/└── $/, "    ");
  return lines.map((l, i) => (i === 0 ? indent : below) + l);
}

function loopHeader(l: Loop): string {
  const where = l.thread === null
    ? "thread unknown"
    : `thread "${l.thread_name ?? "?"}" (ident ${l.thread})`;
  return `loop ${l.id} ${l.type} ${l.class} on ${where}${
    l.running ? "" : " (not running)"
  }: ${l.tasks} pending task(s)`;
}

/** Readable text: per loop, its tasks (as a tree with --tree), then the greenlets. */
export function renderTasks(data: Record<string, unknown>, tree: boolean): string {
  const tasks = (data.tasks as Task[] | undefined) ?? [];
  const loops = (data.loops as Loop[] | undefined) ?? [];
  const out: string[] = [];
  if (data.message) out.push(String(data.message));
  out.push(
    `${data.count} task(s) in ${loops.length} loop(s)${
      data.greenlets ? `, ${data.greenlets} greenlet(s)` : ""
    } — GIL held ${data.gil_ms} ms (longest ${data.gil_max_ms} ms), ${data.total_ms} ms in all`,
  );
  for (const note of (data.notes as string[] | undefined) ?? []) out.push(`note: ${note}`);
  const groups = [
    ...loops.map((l) => ({ title: loopHeader(l), of: (t: Task) => t.loop === l.id })),
    { title: "greenlets", of: (t: Task) => t.kind === "greenlet" },
  ];
  for (const g of groups) {
    const mine = tasks.filter(g.of);
    if (!mine.length) continue;
    out.push("", g.title);
    const ordered = tree ? treeOrder(mine) : mine;
    ordered.forEach((t, i) => {
      const depth = t.depth ?? 0;
      const next = ordered.slice(i + 1).find((n) => (n.depth ?? 0) <= depth);
      const last = next === undefined || (next.depth ?? 0) < depth;
      const indent = tree ? "    ".repeat(depth) + (depth ? (last ? "└── " : "├── ") : "") : "  ";
      out.push(...taskLines(t, indent));
    });
  }
  return out.join("\n");
}

const tasks = defineCommand({
  name: "tasks",
  summary: "Show the asyncio tasks (and gevent greenlets) with what each awaits",
  description: "List every asyncio task of every event loop in the target, on any thread: name, " +
    "coroutine, state (pending, running, cancelling, done), the await chain frame by frame and " +
    "what its innermost await waits for (a sleep with the time left, a task, a gather, a future). " +
    "--tree shows which task awaits which (gather and TaskGroup children under their parent). " +
    "In a gevent process the greenlets are listed too, with their stacks. Read-only: nothing is " +
    "imported and none of the target's code runs.",
  options: [
    { flags: "--tree", description: "show which task awaits which", type: "boolean" },
    {
      flags: "-x, --depth <n>",
      description: "frames per await chain (innermost kept)",
      type: "int",
      default: 20,
    },
  ],
  snippet,
  needsTarget: true,
  request: (opts) => ({ depth: opts.depth }),
  render: (data, opts) => renderTasks(data, Boolean(opts.tree)),
  async run(ctx: CommandContext) {
    const request = tasks.request!(ctx.opts, ctx.args);
    const found: Task[] = [];
    const summary = await callCommand(await ctx.agent(), tasks, request, {
      onFrame: (f) => {
        if (f.type === "tasks") found.push(...(f.tasks as Task[]));
      },
    });
    linkTasks(found);
    const tree = Boolean(ctx.opts.tree);
    if (ctx.out.json) {
      for (const t of tree ? treeOrder(found) : found) {
        ctx.out.line({ type: "task", command: "tasks", data: t });
      }
      ctx.out.result("tasks", summary, () => "");
    } else {
      ctx.out.text(renderTasks({ ...summary, tasks: found }, tree));
    }
    return 0;
  },
});

export default tasks;
