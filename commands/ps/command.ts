// ps: list the Python processes this user can attach to.
import Table from "cli-table3";
import { defineCommand } from "../../core/command.ts";
import { pythonProcesses } from "../../core/processes.ts";

export default defineCommand({
  name: "ps",
  summary: "List Python processes",
  description: "List running CPython processes (pid, version, command line, attached or not).",
  needsTarget: false,
  run({ out }) {
    const processes = pythonProcesses();
    out.result("ps", { processes, count: processes.length }, () => {
      if (!processes.length) return "No Python process found (or none this user may read).";
      const table = new Table({ head: ["PID", "UID", "PYTHON", "ATTACHED", "COMMAND"] });
      for (const p of processes) {
        table.push([
          p.pid,
          p.uid ?? "?",
          p.version,
          p.attached ? "yes" : "",
          p.command.slice(0, 80),
        ]);
      }
      return table.toString();
    });
    return Promise.resolve(0);
  },
});
