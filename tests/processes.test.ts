// Many processes as one (issue 21): `ps` shows families and roles; `--children MASTER` runs one
// command over every worker of a real pre-fork server (gunicorn, 3 sync workers) and of a
// multiprocessing pool, one merged stream with every line tagged with its pid; a worker the
// master forks again joins the stream; `-n` counts over the set; `detach --children` leaves no
// agent anywhere; a pid that cannot be attached is reported and the others go on.
import { assert, assertEquals } from "./helpers/assert.ts";
import {
  cli,
  cliEnv,
  type Python,
  pythons,
  REPO,
  sessionDirOf,
  sleep,
  StreamingCli,
  Target,
  waitUntil,
} from "./helpers/env.ts";
import { childrenOf, type Gunicorn, killPid, spawnGunicorn } from "./helpers/family.ts";

const WORKERS = 3;

type Json = Record<string, unknown>;

function threadCount(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/task`)].length;
}

/** gunicorn with WORKERS sync workers serving tests/targets/frameworks/wsgi_app.py. */
class Server {
  private constructor(private readonly gunicorn: Gunicorn) {}

  static start(py: Python): Server {
    return new Server(spawnGunicorn(py, "gunicorn_sync.py", "wsgi_app:app"));
  }

  get log(): string {
    return this.gunicorn.log();
  }

  get master(): number {
    return this.gunicorn.child.pid;
  }

  get port(): number {
    return Number(/Listening at: http:\/\/127\.0\.0\.1:(\d+)/.exec(this.log)?.[1] ?? 0);
  }

  /** One request; the answer names the worker that served it. */
  async get(path: string): Promise<number> {
    const r = await fetch(`http://127.0.0.1:${this.port}${path}`);
    return Number((await r.text()).trim().split(" ")[1]);
  }

  async ready(): Promise<void> {
    await waitUntil(
      () => this.port > 0 && childrenOf(this.master).length === WORKERS,
      60000,
      `gunicorn started its workers: ${this.log}`,
    );
    await waitUntil(async () => await this.get("/ready").catch(() => 0) > 0, 60000, "it serves");
  }

  async stop(): Promise<void> {
    const workers = childrenOf(this.master);
    killPid(this.master);
    workers.forEach(killPid);
    await this.gunicorn.child.status;
  }
}

/** Sends requests (a few at a time, so every worker gets some) until `enough()` or `stop`. */
async function driveRequests(server: Server, stop: () => boolean): Promise<void> {
  let n = 0;
  while (!stop()) {
    await Promise.all([0, 1, 2].map(() => server.get(`/r${n++}`).catch(() => 0)));
    await sleep(20);
  }
}

function observedPids(w: StreamingCli): Set<number> {
  return new Set(w.observations().map((o) => o.pid as number));
}

async function psFamily(env: Record<string, string>): Promise<Map<number, Json>> {
  const r = await cli(["ps", "--json"], env);
  assertEquals(r.code, 0, r.stderr);
  const processes = (r.lines[0].data as { processes: Json[] }).processes;
  return new Map(processes.map((p) => [p.pid as number, p]));
}

for (const py of pythons()) {
  Deno.test(`${py.version}: gunicorn with ${WORKERS} sync workers as one target`, async (t) => {
    const server = Server.start(py);
    const env = cliEnv();
    try {
      await server.ready();
      const master = server.master;
      const workers = childrenOf(master);

      await t.step("ps shows the master with its workers and their roles", async () => {
        const family = await psFamily(env);
        const m = family.get(master)!;
        assertEquals([m.role, m.children], ["master", workers], JSON.stringify(m));
        for (const w of workers) {
          const p = family.get(w)!;
          assertEquals([p.role, p.ppid, p.attached], ["worker", master, false], JSON.stringify(p));
        }
      });

      await t.step("one watch over every worker; a worker forked again joins it", async () => {
        const w = new StreamingCli(["watch", "wsgi_app.handle", "--children", String(master)], env);
        let done = false;
        const traffic = driveRequests(server, () => done);
        try {
          await waitUntil(
            () => workers.every((p) => observedPids(w).has(p)),
            30000,
            `every worker observed: ${[...observedPids(w)]} ${w.stderr}`,
          );
          for (const o of w.observations()) {
            assertEquals(o.role, "worker");
            assertEquals(
              (o.result as string).split(" ")[1],
              `${o.pid}\n`,
              "the pid is the worker's",
            );
          }
          const attachTook = Math.max(
            ...w.lines.filter((l) => l.command === "attach").map((l) =>
              (l.data as Json).elapsed_ms as number
            ),
          );
          killPid(workers[0]);
          let fresh = 0;
          await waitUntil(
            () => {
              fresh = childrenOf(master).find((p) => !workers.includes(p)) ?? 0;
              return fresh > 0;
            },
            30000,
            "the master forks a new worker",
          );
          const appeared = Date.now();
          await waitUntil(() => observedPids(w).has(fresh), 20000, `worker ${fresh} observed`);
          const latency = Date.now() - appeared;
          console.log(
            `  new worker observed ${latency} ms after it appeared (attach ${attachTook} ms)`,
          );
          // Generous: discovery polls every 250 ms, then one attach and one watch start.
          assert(latency < 250 + 10 * Math.max(attachTook, 300), `${latency} ms`);
          await w.waitFor((l) => l.event === "target_exited" && l.pid === workers[0], 5000);
        } finally {
          done = true;
          await traffic;
          w.kill("SIGINT");
        }
        assertEquals(await w.done, 130, w.stderr);
        const stopped = w.lines.filter((l) => l.event === "watch_stopped").map((l) => l.pid);
        assertEquals(stopped.length, WORKERS, JSON.stringify(stopped));
      });

      await t.step("-n counts observations over the whole set", async () => {
        let done = false;
        const w = new StreamingCli(
          ["watch", "wsgi_app.handle", "--children", String(master), "-n", "7"],
          env,
        );
        const traffic = driveRequests(server, () => done);
        try {
          assertEquals(await w.done, 0, w.stderr);
        } finally {
          done = true;
          await traffic;
          w.kill("SIGKILL");
        }
        assertEquals(w.observations().length, 7);
        assert(observedPids(w).size > 1, `several workers: ${[...observedPids(w)]}`);
      });

      await t.step("detach --children leaves no agent in any worker", async () => {
        const now = childrenOf(master);
        const r = await cli(["detach", "--children", String(master), "--json"], env);
        assertEquals(r.code, 0, r.stdout + r.stderr);
        const detached = r.lines.filter((l) => l.type === "success").map((l) => l.pid);
        assertEquals(detached.sort(), now, r.stdout);
        for (const p of now) {
          assertEquals(sessionDirOf(p), null, `no session of ${p}`);
          await waitUntil(() => threadCount(p) === 1, 5000, `worker ${p} has no agent thread`);
        }
        assertEquals(sessionDirOf(master), null, "the master was never attached");
        assert(await server.get("/after") > 0, "it still serves");
      });
    } finally {
      await server.stop();
    }
  });
}

for (const py of pythons()) {
  Deno.test(`${py.version}: a multiprocessing pool (fork) as one target`, async (t) => {
    const pool = await Target.start(py, "", { script: `${REPO}/tests/targets/pool.py` });
    const workers = childrenOf(pool.pid);
    const sleeper = new Deno.Command("sleep", { args: ["100"] }).spawn();
    const env = cliEnv();
    try {
      await t.step("--children sees calls in each worker", async () => {
        const w = new StreamingCli(["watch", "__main__.work", "--children", String(pool.pid)], env);
        try {
          await waitUntil(
            () => workers.every((p) => observedPids(w).has(p)),
            30000,
            `every pool worker observed: ${[...observedPids(w)]} of ${workers} ${w.stderr}`,
          );
        } finally {
          w.kill("SIGINT");
        }
        assertEquals(await w.done, 130, w.stderr);
      });

      await t.step("monitor: statistics per worker and for the whole pool", async () => {
        const r = await cli(
          ["monitor", "__main__.work", "--children", String(pool.pid), "-c", "1", "-n", "1"],
          env,
        );
        assertEquals(r.code, 0, r.stdout + r.stderr);
        const cycles = r.lines.filter((l) => l.type === "observation");
        const each = cycles.filter((l) => !l.combined);
        assertEquals(each.map((l) => l.pid).sort(), workers, JSON.stringify(cycles));
        const whole = cycles.filter((l) => l.combined);
        assertEquals(whole.length, 1, JSON.stringify(whole));
        assertEquals(whole[0].pids, workers);
        const sum = each.reduce((a, l) => a + (l.calls as number), 0);
        assertEquals(whole[0].calls, sum);
        assertEquals(whole[0].max_ms, Math.max(...each.map((l) => l.max_ms as number)));
      });

      await t.step("ps: the pool's parent with its forked children", async () => {
        const family = await psFamily(env);
        assertEquals(family.get(pool.pid)!.children, workers);
        for (const p of workers) assertEquals(family.get(p)!.role, "forked child");
      });

      await t.step("--pid with one pid that cannot be attached: the others go on", async () => {
        const r = await cli(["thread", "--pid", `${workers[0]},${sleeper.pid}`, "--json"], env);
        assertEquals(r.code, 1, r.stdout + r.stderr);
        const result = r.lines.find((l) => l.type === "result")!;
        assertEquals(result.pid, workers[0]);
        const error = r.lines.find((l) => l.type === "error")!;
        assertEquals([error.pid, error.code], [sleeper.pid, "NOT_ATTACHED"]);
        const attach = await cli(
          ["attach", "--pid", `${sleeper.pid},${workers[1]}`, "--json"],
          env,
        );
        const failed = attach.lines.find((l) => l.type === "error")!;
        assertEquals(failed.pid, sleeper.pid, attach.stdout);
        assert(attach.lines.some((l) => l.type === "success" && l.pid === workers[1]));
      });

      await t.step("a killed CLI leaves no watch in any worker", async () => {
        const w = new StreamingCli(["watch", "__main__.work", "--children", String(pool.pid)], env);
        try {
          await waitUntil(
            () => w.lines.filter((l) => l.event === "watch_started").length === workers.length,
            20000,
            `every worker watched: ${w.stderr}`,
          );
        } finally {
          w.kill("SIGKILL");
        }
        await w.done;
        await waitUntil(
          async () => {
            const r = await cli(["reset", "--list", "--children", String(pool.pid), "--json"], env);
            const lists = r.lines.filter((l) => l.type === "result");
            return lists.length === workers.length &&
              lists.every((l) => (l.data as Json).total === 0);
          },
          10000,
          "no worker lists a watch",
        );
      });

      await t.step("detach --children: no agent left", async () => {
        const r = await cli(["detach", "--children", String(pool.pid), "--json"], env);
        assertEquals(r.code, 0, r.stdout + r.stderr);
        for (const p of workers) assertEquals(sessionDirOf(p), null, `no session of ${p}`);
      });
    } finally {
      sleeper.kill("SIGKILL");
      await sleeper.status;
      workers.forEach(killPid);
      await pool.stop();
    }
  });
}
