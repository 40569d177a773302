// The CLI never hangs: against a stopped target or a held GIL every request ends
// within its deadline and says why; a second Ctrl-C always exits; a stream whose
// target exits or whose agent another client detached ends with an event and 0.
// One target per interpreter is shared by the steps; it is resumed and killed in
// every case.
import { assert, assertEquals } from "./helpers/assert.ts";
import {
  cliEnv,
  DENO,
  pythons,
  REPO,
  sessionDirOf,
  sleep,
  StreamingCli,
  Target,
  waitUntil,
} from "./helpers/env.ts";

/** The short deadline the steps use, so that waiting for it stays cheap. */
const DEADLINE_MS = 1000;
/** Slack over a deadline for starting Deno and diagnosing: a hang would never end at all. */
const SLACK_MS = 6000;

interface Run {
  code: number;
  lines: Record<string, unknown>[];
  stderr: string;
  ms: number;
}

/** Runs the CLI to its end, or kills it when it outlives `limitMs` (a hang fails the test). */
async function bounded(
  args: string[],
  env: Record<string, string>,
  limitMs: number,
  wrap: string[] = [],
): Promise<Run> {
  const t0 = performance.now();
  const [program, ...before] = [...wrap, DENO];
  const out = await new Deno.Command(program, {
    args: [...before, "run", "-A", `${REPO}/mod.ts`, ...args, "--json"],
    env,
    clearEnv: true,
    cwd: wrap.length ? "/" : REPO,
    stdin: "null",
    signal: AbortSignal.timeout(limitMs),
  }).output();
  const ms = performance.now() - t0;
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  assert(ms < limitMs, `peeka ${args.join(" ")} hung (killed after ${limitMs} ms): ${stderr}`);
  const lines = stdout.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  return { code: out.code, lines, stderr, ms };
}

function errorOf(r: Run): { code: string; error: string } {
  const e = r.lines.find((l) => l.type === "error") as { code: string; error: string } | undefined;
  assert(e, `an error line; got ${JSON.stringify(r.lines)} ${r.stderr}`);
  assertEquals(r.stderr.trim().split("\n").length, 1, `one line on stderr: ${r.stderr}`);
  return e;
}

function assertStoppedTimeout(r: Run, what: string, pid: number): void {
  assertEquals(r.code, 1, `${what}: ${r.stderr}`);
  const e = errorOf(r);
  assert(
    /\bstopped\b/.test(e.error) && e.error.includes(`kill -CONT ${pid}`),
    `${what} says the target is stopped: ${e.error}`,
  );
}

async function attach(pid: number, env: Record<string, string>): Promise<void> {
  const r = await bounded(["attach", String(pid)], env, 30000);
  assertEquals(r.code, 0, r.stderr);
}

/** A watch on the function the target calls for every connection, once it has started. */
async function startWatch(pid: number, env: Record<string, string>): Promise<StreamingCli> {
  const w = new StreamingCli(["watch", "__main__.report", "--pid", String(pid)], env);
  await w.waitFor((l) => l.event === "watch_started" || l.type === "error");
  assert(w.lines.some((l) => l.event === "watch_started"), w.stderr);
  return w;
}

/** Waits for a streaming CLI to end, failing (and killing it) when it outlives `limitMs`. */
async function endOf(w: StreamingCli, limitMs: number, what: string): Promise<number> {
  const timer = setTimeout(() => w.kill("SIGKILL"), limitMs);
  const t0 = performance.now();
  try {
    const code = await w.done;
    assert(performance.now() - t0 < limitMs, `${what} hung: ${w.stderr}`);
    return code;
  } finally {
    clearTimeout(timer);
  }
}

/** Detaches if an agent is still there, then waits until its files are gone. */
async function settle(pid: number, env: Record<string, string>): Promise<void> {
  if (sessionDirOf(pid)) await bounded(["detach", String(pid)], env, 30000);
  await waitUntil(() => sessionDirOf(pid) === null, 10000, `the session of ${pid} is gone`);
}

/** With the target stopped: every command ends within its deadline, saying so; Ctrl-C exits. */
async function whileStopped(
  target: Target,
  env: Record<string, string>,
  checkDefault: boolean,
  twice: StreamingCli,
  once: StreamingCli,
): Promise<void> {
  const pid = target.pid;
  await waitUntil(() => target.state() === "T", 5000, "the target is stopped");
  const limit = DEADLINE_MS + SLACK_MS;
  const [thread, reset, detach, again, byDefault] = await Promise.all([
    bounded(["thread", "--pid", String(pid)], env, limit),
    bounded(["reset", "--list", "--pid", String(pid)], env, limit),
    bounded(["detach", String(pid)], env, limit),
    bounded(["attach", String(pid), "--timeout", "1500"], env, limit + 1500),
    // The default deadline (10 s) is bounded too: checked once, it takes that long.
    checkDefault
      ? bounded(["thread", "--pid", String(pid)], cliEnv(), 10000 + SLACK_MS)
      : Promise.resolve(null),
    (async () => {
      twice.kill("SIGINT");
      await sleep(200);
      twice.kill("SIGINT");
      // A second Ctrl-C exits at once; the bound only catches a CLI that does not.
      assertEquals(await endOf(twice, SLACK_MS, "watch after two Ctrl-C"), 130);
    })(),
    (async () => {
      once.kill("SIGINT");
      // Unanswered, the first Ctrl-C exits after its grace (2 s).
      assertEquals(await endOf(once, 2000 + SLACK_MS, "watch after one Ctrl-C"), 130);
    })(),
  ]);
  assertStoppedTimeout(thread, "thread", pid);
  assertEquals(errorOf(thread).code, "AGENT_TIMEOUT");
  assertStoppedTimeout(reset, "reset --list", pid);
  assertEquals(errorOf(reset).code, "AGENT_TIMEOUT");
  assertStoppedTimeout(detach, "detach", pid);
  assertEquals(errorOf(detach).code, "AGENT_TIMEOUT");
  assertStoppedTimeout(again, "a second attach", pid);
  if (byDefault) {
    assertStoppedTimeout(byDefault, "thread with the default deadline", pid);
    assertEquals(errorOf(byDefault).code, "AGENT_TIMEOUT");
  }
  for (const [w, what] of [[twice, "two Ctrl-C"], [once, "one Ctrl-C"]] as const) {
    const e = w.lines.find((l) => l.type === "error") as { code: string; error: string };
    assertEquals(e?.code, "INTERRUPTED", `${what}: ${w.stderr}`);
    assert(/the agent did not answer .*stopped/.test(e.error), e.error);
  }
}

const all = pythons();

for (const py of all) {
  const first = py === all[0];
  Deno.test(`${py.version}: the CLI ends in time against a stopped or busy target`, async (t) => {
    const target = await Target.start(py, "stuck");
    const pid = target.pid;
    const env = cliEnv({ PEEKA_REQUEST_TIMEOUT_MS: String(DEADLINE_MS) });
    const streams: StreamingCli[] = [];
    try {
      await attach(pid, env);

      if (first) {
        await t.step(
          "another user sees 'attached by another user', not 'not attached'",
          async () => {
            const denoDir = Deno.makeTempDirSync({ prefix: "peeka-deno-nobody-" });
            Deno.chmodSync(denoDir, 0o777);
            const r = await bounded(
              ["thread", "--pid", String(pid)],
              { ...env, HOME: "/tmp", DENO_DIR: denoDir, PEEKA_STATE_DIR: denoDir },
              60000, // a fresh DENO_DIR: Deno prepares every module once
              ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"],
            );
            Deno.removeSync(denoDir, { recursive: true });
            assertEquals(r.code, 1, r.stderr);
            const e = errorOf(r);
            assertEquals(e.code, "ATTACHED_BY_OTHER_USER", e.error);
            assert(/attached by another user.*uid 0.*root/.test(e.error), e.error);
          },
        );
      }

      await t.step("stopped: thread, reset, detach, attach end in time; Ctrl-C exits", async () => {
        const twice = await startWatch(pid, env);
        const once = await startWatch(pid, env);
        streams.push(twice, once);
        Deno.kill(pid, "SIGSTOP");
        try {
          await whileStopped(target, env, first, twice, once);
        } finally {
          Deno.kill(pid, "SIGCONT");
        }
        await settle(pid, env);
      });

      await t.step(
        "a stream whose agent another client detaches ends with that event",
        async () => {
          await attach(pid, env);
          const w = await startWatch(pid, env);
          streams.push(w);
          const detach = await bounded(["detach", String(pid)], env, 30000);
          assertEquals(detach.code, 0, detach.stderr);
          assertEquals(await endOf(w, 10000, "watch after detach"), 0);
          const event = w.lines.find((l) => l.event === "agent_detached") as { message: string };
          assert(event, `an agent_detached event: ${JSON.stringify(w.lines)} ${w.stderr}`);
          assert(/detached by another peeka client/.test(event.message), event.message);
          assert(!/attach .*again/.test(w.stderr), w.stderr);
        },
      );

      await t.step("a thread holding the GIL: the timeout names it", async () => {
        await attach(pid, env);
        streams.push(await startWatch(pid, env)); // for the next step: it needs the GIL to start
        // Held far longer than the deadline even when the target's calibration of its C call
        // is off by 10x on a busy machine; the target is killed while it is held.
        await target.ask("stuck 60");
        await target.waitFor((l) => l === "stuck-start");
        const r = await bounded(["thread", "--pid", String(pid)], env, DEADLINE_MS + SLACK_MS);
        const e = errorOf(r);
        assertEquals(e.code, "AGENT_TIMEOUT", e.error);
        assert(/thread \d+ .*is running and likely holds the GIL/.test(e.error), e.error);
      });

      await t.step("a stream whose target exits ends with target_exited and 0", async () => {
        const w = streams[streams.length - 1];
        Deno.kill(pid, "SIGKILL");
        assertEquals(await endOf(w, 10000, "watch after the target died"), 0, w.stderr);
        const event = w.lines.find((l) => l.event === "target_exited");
        assertEquals(event?.pid, pid, JSON.stringify(w.lines));
        assertEquals(w.stderr, "");
      });
    } finally {
      try {
        Deno.kill(pid, "SIGCONT");
      } catch { /* already gone */ }
      for (const w of streams) w.kill("SIGKILL");
      await Promise.all(streams.map((w) => w.done));
      await target.stop();
      // A target killed with its agent leaves its session directory; remove it here.
      const dir = sessionDirOf(pid);
      if (dir) Deno.removeSync(dir, { recursive: true });
    }
  });
}
