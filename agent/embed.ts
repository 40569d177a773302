// The agent's Python source, embedded in the program (no file is read at run time).
import real from "./real.py" with { type: "text" };
import wire from "./wire.py" with { type: "text" };
import concurrency from "./concurrency.py" with { type: "text" };
import forking from "./forking.py" with { type: "text" };
import server from "./agent.py" with { type: "text" };

/** The agent's parts, in the order they are joined into its one source: the target execs that
 * source as boot.py, never imports them, so they share one namespace, and a part may use at
 * load time only what an earlier one defined. tests/helpers/agent_source.py reads this list
 * (the quoted paths, in order) to join the same source for the Python tests. */
const AGENT_PARTS: [string, string][] = [
  ["agent/real.py", real],
  ["agent/wire.py", wire],
  ["agent/concurrency.py", concurrency],
  ["agent/forking.py", forking],
  ["agent/agent.py", server],
];

/** A part's first line in boot.py: which file the lines below it come from (line N of boot.py
 * is line N - H of that file, H being this header's line). */
function partHeader(path: string): string {
  return `# ---- ${path} ----\n`;
}

export const AGENT_SOURCE: string = AGENT_PARTS.map(([path, source]) => partHeader(path) + source)
  .join("");
export const AGENT_VERSION = "0.1.0";
