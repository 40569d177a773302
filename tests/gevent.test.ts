// gevent targets: the agent stays on real OS threads with the interpreter's own primitives
// whether the target monkey-patched before or after the attach, a greenlet that never yields
// does not keep it from answering, `thread` shows the real threads (never the agent's), and
// attach reports the concurrency model. eventlet is not installed here: its detection is not
// tested.
import { assert, assertEquals } from "./helpers/assert.ts";
import {
  cli,
  cliEnv,
  type Python,
  pythons,
  REPO,
  sleep,
  StreamingCli,
  Target,
  waitUntil,
} from "./helpers/env.ts";
import { FRAMEWORK_TARGETS, frameworkPython } from "./helpers/frameworks.ts";

const GEVENT_TARGET = `${FRAMEWORK_TARGETS}/gevent_target.py`;
const PLAIN = `${REPO}/tests/targets/plain.py`;

type Json = Record<string, unknown>;
type Frame = { file: string; function: string };
type ThreadRow = Json & { stack: Frame[] };

async function json(args: string[], env: Record<string, string>): Promise<Json> {
  const r = await cli([...args, "--json"], env);
  const last = r.lines[r.lines.length - 1] ?? {};
  assertEquals(r.code, 0, `${args.join(" ")}: ${r.stdout} ${r.stderr}`);
  return last.data as Json;
}

async function attachTo(pid: number, env: Record<string, string>): Promise<Json> {
  return await json(["attach", String(pid)], env);
}

async function threadsOf(pid: number, env: Record<string, string>): Promise<ThreadRow[]> {
  return (await json(["thread", "--pid", String(pid)], env)).threads as ThreadRow[];
}

/** No thread shown runs the agent's code (its threads are hidden, its frames never leak). */
function assertNoAgentFrames(threads: ThreadRow[]): void {
  for (const t of threads) {
    for (const f of t.stack) {
      assert(
        !f.file.startsWith("<peeka") &&
          !/^_(thread_main|run_call|serve|accept_loop)$/.test(f.function),
        `an agent frame in thread ${t.ident}: ${JSON.stringify(f)}`,
      );
    }
  }
}

function tasks(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/task`)].length;
}

function startGevent(py: Python, mode: string): Promise<Target> {
  const fw = frameworkPython(py);
  return Target.start(fw.python, mode, { script: GEVENT_TARGET, env: fw.env });
}

/** gunicorn (one gevent worker) serving tests/targets/frameworks/flask_app.py. */
class Gunicorn {
  log = "";
  private constructor(readonly child: Deno.ChildProcess) {
    this.read();
  }

  static start(py: Python): Gunicorn {
    const fw = frameworkPython(py);
    return new Gunicorn(
      new Deno.Command(fw.python.path, {
        args: [
          "-m",
          "gunicorn",
          "-c",
          `${FRAMEWORK_TARGETS}/gunicorn_conf.py`,
          "--chdir",
          FRAMEWORK_TARGETS,
          "flask_app:app",
        ],
        env: fw.env,
        cwd: "/tmp",
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn(),
    );
  }

  private async read(): Promise<void> {
    for await (const chunk of this.child.stderr.pipeThrough(new TextDecoderStream())) {
      this.log += chunk;
    }
  }

  get port(): number {
    return Number(/Listening at: http:\/\/127\.0\.0\.1:(\d+)/.exec(this.log)?.[1] ?? 0);
  }

  get worker(): number {
    return Number(/Booting worker with pid: (\d+)/.exec(this.log)?.[1] ?? 0);
  }

  async get(path: string): Promise<[number, string]> {
    const r = await fetch(`http://127.0.0.1:${this.port}${path}`);
    return [r.status, await r.text()];
  }

  async ready(): Promise<void> {
    await waitUntil(() => this.port > 0 && this.worker > 0, 60000, `gunicorn started: ${this.log}`);
    await waitUntil(
      async () => (await this.get("/hello/ready").catch(() => [0]))[0] === 200,
      60000,
      `the gevent worker answers: ${this.log}`,
    );
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    try {
      this.child.kill("SIGKILL");
    } catch { /* gone */ }
    if (worker) {
      try {
        Deno.kill(worker, "SIGKILL");
      } catch { /* gone */ }
    }
    await this.child.status;
  }
}

for (const py of pythons()) {
  Deno.test(`${py.version}: gunicorn -k gevent + Flask: thread, watch, detach`, async (t) => {
    const server = Gunicorn.start(py);
    const env = cliEnv();
    try {
      await server.ready();
      const pid = server.worker;
      const before = tasks(pid);

      await t.step("attach reports gevent and what it patched", async () => {
        const c = (await attachTo(pid, env)).concurrency as Json;
        assertEquals(c.model, "gevent", JSON.stringify(c));
        for (const m of ["socket", "thread", "time", "select", "ssl"]) {
          assert((c.patched as string[]).includes(m), `${m} in ${JSON.stringify(c.patched)}`);
        }
        assert(tasks(pid) > before, "the agent runs on an OS thread of its own");
      });

      await t.step(
        "thread: the real main thread with the hub, none of the agent's frames",
        async () => {
          const threads = await threadsOf(pid, env);
          const main = threads.find((x) => x.is_main);
          assert(main, `a main thread: ${JSON.stringify(threads).slice(0, 600)}`);
          assertEquals([main.name, main.native_id], ["MainThread", pid]);
          assert(
            main.stack.some((f) => f.file.includes("/gevent/")),
            `the hub's frames: ${JSON.stringify(main.stack)}`,
          );
          assertNoAgentFrames(threads);
        },
      );

      await t.step("watch a Flask view while requests come over HTTP", async () => {
        const w = new StreamingCli(
          ["watch", "flask_app.hello", "-n", "3", "--pid", String(pid)],
          env,
        );
        try {
          await w.waitFor((l) => l.event === "watch_started" || l.type === "error", 20000);
          for (const name of ["a", "b", "c"]) {
            assertEquals(await server.get(`/hello/${name}`), [200, `hello ${name}\n`]);
          }
          assertEquals(await w.done, 0, w.stderr);
        } finally {
          w.kill("SIGKILL");
        }
        const seen = w.observations();
        assertEquals(seen.map((o) => o.func_name), Array(3).fill("flask_app.hello"));
      });

      await t.step("detach leaves it serving", async () => {
        assertEquals((await cli(["detach", "--pid", String(pid), "--json"], env)).code, 0);
        assertEquals(await server.get("/hello/after"), [200, "hello after\n"]);
      });
    } finally {
      await server.stop();
    }
  });
}

for (const py of pythons()) {
  Deno.test(`${py.version}: gevent: patched after the attach, a greenlet that never yields, the model`, async (t) => {
    const late = await startGevent(py, "late");
    const spinner = await startGevent(py, "spin");
    const loop = await Target.start(py, "asyncio", { script: PLAIN });
    const env = cliEnv();
    try {
      await t.step(
        "monkey.patch_all() after the attach: the agent keeps working on real threads",
        async () => {
          const before = tasks(late.pid);
          const c = (await attachTo(late.pid, env)).concurrency as Json;
          assertEquals(
            [c.model, c.patched],
            ["gevent", []],
            "gevent imported, nothing patched yet",
          );
          Deno.kill(late.pid, "SIGUSR1");
          await late.waitFor((l) => l === "patched");
          const threads = await threadsOf(late.pid, env);
          assertEquals(threads.filter((x) => x.is_main).map((x) => x.native_id), [late.pid]);
          assertNoAgentFrames(threads);
          assert(tasks(late.pid) > before, "the agent's thread is still an OS thread");
          const again = (await attachTo(late.pid, env)).concurrency as Json;
          assert((again.patched as string[]).includes("thread"), JSON.stringify(again));
        },
      );

      await t.step("attach and thread answer while a greenlet spins without yielding", async () => {
        const started = spinner.lines.length;
        Deno.kill(spinner.pid, "SIGUSR1");
        await spinner.waitFor((l) => l === "spin-start");
        const c = (await attachTo(spinner.pid, env)).concurrency as Json;
        const threads = await threadsOf(spinner.pid, env);
        const ended = spinner.lines.slice(started).some((l) => l.startsWith("spin-end"));
        assert(!ended, "attach and thread finished before the 5 s spin did");
        const main = threads.find((x) => x.is_main)!;
        assert(
          main?.stack.some((f) => f.function === "spin"),
          JSON.stringify(threads).slice(0, 600),
        );
        assertNoAgentFrames(threads);
        assertEquals(c.model, "gevent");
        assert(
          ["socket", "thread", "time", "select"].every((m) => (c.patched as string[]).includes(m)),
          JSON.stringify(c),
        );
      });

      await t.step("an asyncio loop is reported as such", async () => {
        await sleep(100); // the loop is running (ready is printed from inside it)
        const c = (await attachTo(loop.pid, env)).concurrency as Json;
        assertEquals([c.model, c.asyncio_loops, c.patched], ["asyncio", 1, []]);
      });
      for (const target of [late, spinner, loop]) {
        assertEquals(target.errText, "", "nothing on the target's stderr");
      }
    } finally {
      await Promise.all([late.stop(), spinner.stop(), loop.stop()]);
    }
  });
}
