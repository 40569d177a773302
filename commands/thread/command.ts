// thread: every Python thread of the target with its current stack.
import { defineCommand } from "../../core/command.ts";
import snippet from "./snippet.py" with { type: "text" };

interface Frame {
  file: string;
  line: number;
  function: string;
  code: string | null;
}
interface ThreadInfo {
  ident: number;
  native_id: number | null;
  name: string;
  daemon: boolean | null;
  is_main: boolean;
  state: string;
  stack: Frame[];
}

export default defineCommand({
  name: "thread",
  summary: "Show the target's threads and their stacks",
  description: "List every Python thread of the target (name, ident, native id, daemon, state) " +
    "with its current Python stack, innermost frame last.",
  options: [
    { flags: "--tid <ident>", description: "only the thread with this ident", type: "int" },
    {
      flags: "-d, --depth <n>",
      description: "frames per stack (innermost kept)",
      type: "int",
      default: 50,
    },
  ],
  snippet,
  request: (opts) => ({ depth: opts.depth, ...(opts.tid !== undefined ? { tid: opts.tid } : {}) }),
  render(data) {
    const threads = (data.threads as ThreadInfo[]) ?? [];
    const lines = [`${threads.length} thread(s)`];
    for (const t of threads) {
      lines.push(
        "",
        `"${t.name}" ident=${t.ident} native_id=${t.native_id ?? "?"} daemon=${t.daemon ?? "?"}` +
          `${t.is_main ? " main" : ""} ${t.state}`,
      );
      for (const f of t.stack) {
        lines.push(`    File "${f.file}", line ${f.line}, in ${f.function}`);
        if (f.code) lines.push(`        ${f.code}`);
      }
    }
    return lines.join("\n");
  },
});
