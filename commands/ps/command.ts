// ps: list the Python processes this user can attach to, as families: a pre-fork master with
// its workers, a pool with its children, each with its role and whether its agent answers.
import Table from "cli-table3";
import { defineCommand } from "../../core/command.ts";
import { agentAnswers, type PythonProcess, pythonProcesses } from "../../core/processes.ts";

type Listed = PythonProcess & { agent: "answers" | "silent" | null };

/** The processes in family order: each parent followed by its children, with their depth. */
function familyOrder(list: Listed[]): { p: Listed; depth: number }[] {
  const byPid = new Map(list.map((p) => [p.pid, p]));
  const ordered: { p: Listed; depth: number }[] = [];
  const visit = (p: Listed, depth: number) => {
    ordered.push({ p, depth });
    for (const c of p.children) visit(byPid.get(c)!, depth + 1);
  };
  for (const p of list) if (!byPid.has(p.ppid)) visit(p, 0);
  return ordered;
}

function attachedText(p: Listed): string {
  return p.agent === "answers" ? "yes" : p.agent === "silent" ? "not answering" : "";
}

function render(list: Listed[]): string {
  if (!list.length) return "No Python process found (or none this user may read).";
  const table = new Table({
    head: ["PID", "PPID", "UID", "PYTHON", "ROLE", "ATTACHED", "COMMAND"],
  });
  for (const { p, depth } of familyOrder(list)) {
    table.push([
      depth ? `${"  ".repeat(depth - 1)}└ ${p.pid}` : String(p.pid),
      p.ppid,
      p.uid ?? "?",
      p.version,
      p.role ?? "",
      attachedText(p),
      p.command.slice(0, 70),
    ]);
  }
  return table.toString();
}

export default defineCommand({
  name: "ps",
  summary: "List Python processes and their families",
  description: "List running CPython processes: pid, parent, version, role (master, worker, " +
    "spawn worker…), whether peeka is attached and its agent answers, command line. On a " +
    "terminal, children are shown under their parent.",
  needsTarget: false,
  async run({ out }) {
    const processes: Listed[] = await Promise.all(
      pythonProcesses().map(async (p) => ({
        ...p,
        agent: p.attached ? (await agentAnswers(p.pid) ? "answers" : "silent") : null,
      })),
    );
    out.result("ps", { processes, count: processes.length }, () => render(processes));
    return 0;
  },
});
