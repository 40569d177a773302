// demo: the whole flow in one command — start a sample service, attach,
// show its threads, detach, stop it.
import { defineCommand } from "../../core/command.ts";
import { attach } from "../../attach/attach.ts";
import { AgentClient } from "../../core/protocol.ts";
import { callCommand } from "../../core/call.ts";
import serviceSource from "./service.py" with { type: "text" };

function findPython(explicit?: string): string {
  if (explicit) return explicit;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of ["python3", "python"]) {
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
      } catch { /* not here */ }
    }
  }
  throw new Error(
    "the demo needs a CPython to run its sample service: none on PATH; pass --python /path/to/python3",
  );
}

async function readReadyLine(stdout: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the sample service exited before it was ready");
    text += value;
  }
  reader.releaseLock();
  return text.split("\n")[0];
}

export default defineCommand({
  name: "demo",
  summary: "Run the whole flow on a sample service",
  description:
    "Start a small sample Python service, attach to it, show its threads, detach and stop it.",
  options: [{
    flags: "--python <path>",
    description: "interpreter for the sample service (default: python3 on PATH)",
  }],
  needsTarget: false,
  async run({ out, opts, registry }) {
    // Another command is reached through the registry: commands do not import each other.
    const threadCommand = registry.commands.find((c) => c.name === "thread")!;
    const python = findPython(opts.python as string | undefined);
    const script = Deno.makeTempFileSync({ prefix: "peeka-demo-", suffix: ".py" });
    Deno.writeTextFileSync(script, serviceSource);
    const child = new Deno.Command(python, { args: [script], stdout: "piped", stderr: "inherit" })
      .spawn();
    try {
      const ready = await readReadyLine(child.stdout);
      const pid = child.pid;
      out.status(`Started the sample service (${python}): ${ready}`);
      out.status(`Attaching to process ${pid}`);
      const attached = await attach(pid, { timeoutMs: 5000 });
      out.success(
        "attach",
        { ...attached },
        `Attached in ${attached.elapsed_ms} ms (Python ${attached.python_version})`,
      );
      const client = await AgentClient.connect(attached.socket);
      try {
        const data = await callCommand(client, threadCommand, { depth: 20 });
        out.result("thread", data, () => threadCommand.render!(data, {}));
        const reply = await client.request("detach");
        out.success("detach", {
          pid,
          message: `Detached from process ${pid}`,
          restored: reply.restored ?? 0,
        }, `Detached from process ${pid}`);
      } finally {
        client.close();
      }
      return 0;
    } finally {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
      Deno.removeSync(script);
      out.status("Stopped the sample service");
    }
  },
});
