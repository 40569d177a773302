// The demo's sample service (service.py, saved as shop.py in a temporary folder): started with
// its stdin held by peeka, so that it stops by itself if peeka dies, and stopped cleanly.
import { CommandFailure } from "../../core/command.ts";
import serviceSource from "./service.py" with { type: "text" };

const READY_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 3000;

// -I: no PYTHON* variable or user site changes the demo (the folder is put on sys.path here);
// -B: no __pycache__. The service removes its folder when it exits, even if peeka died.
const LAUNCH = "import sys; sys.path.insert(0, sys.argv[1]); import shop; shop.main(sys.argv[1])";

/** The interpreter to run the service with: --python, else python3 (or python) on PATH. */
export function findPython(explicit?: string): string {
  if (explicit) return explicit;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of ["python3", "python"]) {
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
      } catch { /* not here */ }
    }
  }
  throw new CommandFailure(
    "NO_PYTHON",
    "the demo needs a CPython to run its sample service: none on PATH; pass --python /path/to/python3",
  );
}

/** The first line the service prints ("ready pid=N port=P"), or null if it ended first. */
async function firstLine(stdout: ReadableStream<Uint8Array>): Promise<string | null> {
  const reader = stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) return null;
    text += value;
  }
  reader.releaseLock();
  return text.split("\n")[0];
}

function deadline<T>(ms: number, value: T): { promise: Promise<T>; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(value), ms)));
  return { promise, cancel: () => clearTimeout(timer) };
}

export class DemoService {
  private constructor(
    private child: Deno.ChildProcess,
    private stdin: WritableStreamDefaultWriter<Uint8Array>,
    readonly folder: string,
  ) {}

  get pid(): number {
    return this.child.pid;
  }

  static async start(python: string): Promise<DemoService> {
    const dir = Deno.makeTempDirSync({ prefix: "peeka-demo-" });
    Deno.writeTextFileSync(`${dir}/shop.py`, serviceSource);
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(python, {
        args: ["-I", "-B", "-c", LAUNCH, dir],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped", // passed on by peeka: the service never holds peeka's own stderr
      }).spawn();
    } catch (e) {
      Deno.removeSync(dir, { recursive: true });
      throw new CommandFailure(
        "DEMO_SERVICE_FAILED",
        `cannot run ${python} for the demo service (${
          (e as Error).message
        }); pass --python /path/to/python3`,
      );
    }
    child.stderr.pipeTo(Deno.stderr.writable, { preventClose: true }).catch(() => {});
    const service = new DemoService(child, child.stdin.getWriter(), dir);
    const timeout = deadline(READY_TIMEOUT_MS, "timeout");
    const ready = await Promise.race([firstLine(child.stdout), timeout.promise]);
    timeout.cancel();
    if (ready === null || ready === "timeout" || !ready.startsWith("ready")) {
      await service.stop();
      throw new CommandFailure(
        "DEMO_SERVICE_FAILED",
        ready === "timeout"
          ? `the demo service (${python}) was not ready within ${READY_TIMEOUT_MS / 1000} s`
          : `the demo service (${python}) exited before it was ready (what it printed, if anything, is above)`,
      );
    }
    return service;
  }

  /** Closes its stdin and sends SIGTERM (it exits through atexit); SIGKILL if that is ignored. */
  async stop(): Promise<void> {
    await this.stdin.close().catch(() => {});
    try {
      this.child.kill("SIGTERM");
    } catch { /* already gone */ }
    const timeout = deadline(STOP_TIMEOUT_MS, "timeout");
    if (await Promise.race([this.child.status, timeout.promise]) === "timeout") {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone meanwhile */ }
      await this.child.status;
    }
    timeout.cancel();
    try {
      Deno.removeSync(this.folder, { recursive: true });
    } catch { /* the service removed it */ }
  }
}
