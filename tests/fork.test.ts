// fork() carries nothing of peeka into a child: a child forked while a watch is active (os.fork, a
// multiprocessing pool) runs the original code with no tool id, agent, thread or socket of ours, an
// exec'd child (subprocess, spawn, forkserver) has no descriptor of ours, and the parent's watch goes
// on. A kept child can be attached on its own, independently of its parent. One forker.py target
// per interpreter.
import { assert, assertEquals } from "./helpers/assert.ts";
import {
  cli,
  cliEnv,
  pythons,
  REPO,
  sessionDirOf,
  StreamingCli,
  Target,
  waitUntil,
} from "./helpers/env.ts";
import { selfTest } from "./helpers/selftest.ts";

const FORKER = `${REPO}/tests/targets/forker.py`;

type State = {
  pid: number;
  own_code: boolean;
  agent: boolean;
  frames: number;
  tasks: number;
  sockets: number[];
  tools?: (string | null)[];
  local_events?: number[];
  watched_ns?: number;
  unwatched_ns?: number;
};

/** The inodes of the sockets bound at this session's agent.sock: the listener and every client
 * connection it accepted (an accepted Unix socket carries its listener's path). */
function agentSocketInodes(session: string): number[] {
  const path = `${session}/agent.sock`;
  return Deno.readTextFileSync("/proc/net/unix").split("\n").slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols[7] === path)
    .map((cols) => Number(cols[6]));
}

function socketInodesOf(pid: number): number[] {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].flatMap((e) => {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`));
      return m ? [Number(m[1])] : [];
    } catch {
      return []; // closed meanwhile
    }
  });
}

/** The exact checks: the child runs the original code, holds no tool id, events, agent, thread
 * or socket of ours, and (generously) a watched function costs what an unwatched one does. */
function assertClean(s: State, ours: number[], where: string) {
  const why = `${where}: ${JSON.stringify(s)}`;
  assertEquals(s.own_code, true, why);
  assertEquals(s.agent, false, why);
  assertEquals([s.frames, s.tasks], [1, 1], why);
  assertEquals(s.sockets.filter((i) => ours.includes(i)), [], why);
  if (s.tools) {
    assertEquals(s.tools, [null, null, null, null, null, null], why);
    assertEquals(s.local_events, [0, 0, 0, 0, 0, 0], why);
  }
  if (s.watched_ns !== undefined) {
    assert(s.watched_ns < 2 * s.unwatched_ns!, why);
  }
}

/** Runs `body` while a streaming command (watch, trace) is armed; Ctrl-C ends it, also on failure. */
async function whileStreaming(
  args: string[],
  env: Record<string, string>,
  body: (stream: StreamingCli) => Promise<void>,
) {
  const stream = new StreamingCli(args, env);
  try {
    await stream.waitFor((l) => String(l.event).endsWith("_started"));
    await body(stream);
  } finally {
    stream.kill("SIGINT");
    await stream.done;
  }
}

for (const py of pythons()) {
  Deno.test(`${py.version}: nothing of peeka crosses fork() or exec`, async (t) => {
    const target = await Target.start(py, "", { script: FORKER, env: { FORKER_PYTHON: py.path } });
    const env = cliEnv();
    const pid = String(target.pid);
    const ask = async <T = State>(cmd: string) => (await target.ask(cmd)) as T;
    let kept = 0;
    try {
      await t.step("the engine's and a probe's locks held by a thread at the fork", async () => {
        await selfTest(py.path, [`${REPO}/tests/agent/fork_selftest.py`]);
      });

      assertEquals((await cli(["attach", pid, "--json"], env)).code, 0);
      const session = sessionDirOf(target.pid)!;

      await t.step(
        "a child forked during a watch starts clean; the parent's watch goes on",
        async () => {
          await whileStreaming(
            ["watch", "forker.work", "--rate", "0", "--pid", pid],
            env,
            async (w) => {
              await ask("call 5");
              await waitUntil(() => w.observations().length === 5, 5000, "5 observations");
              const ours = agentSocketInodes(session);
              // the check can fail: the parent holds the listener and the watch's connection
              assert(
                socketInodesOf(target.pid).filter((i) => ours.includes(i)).length >= 2,
                String(ours),
              );
              // ... and its watched function is instrumented (what a child must not get)
              const parent = await ask("report");
              const instrumented = parent.local_events
                ? parent.local_events.some((e) => e !== 0)
                : !parent.own_code;
              assertEquals([instrumented, parent.agent], [true, true], JSON.stringify(parent));

              assertClean(await ask("fork"), ours, "os.fork child");
              const pool = await ask<{ workers: State[] }>("pool fork");
              pool.workers.forEach((s) => assertClean(s, ours, "fork pool worker"));
              for (const method of ["spawn", "forkserver"]) {
                const { workers } = await ask<{ workers: State[] }>(`pool ${method}`);
                workers.forEach((s) =>
                  assertEquals(s.sockets.filter((i) => ours.includes(i)), [], method)
                );
              }
              const exec = await ask("exec");
              assertEquals(exec.sockets.filter((i) => ours.includes(i)), [], JSON.stringify(exec));

              await ask("call 5");
              await waitUntil(() => w.observations().length === 10, 5000, "5 more observations");
            },
          );
        },
      );

      await t.step(
        "a child forked inside a traced call: the trace's profile function leaves",
        async () => {
          await whileStreaming(["trace", "forker.fork_traced", "--pid", pid], env, async (tr) => {
            const s = await ask<State & { profile: boolean }>("fork_traced");
            assertClean(s, agentSocketInodes(session), "child of a traced call");
            assertEquals(s.profile, false, JSON.stringify(s));
            await tr.waitFor((l) => l.type === "observation");
          });
        },
      );

      await t.step(
        "a kept child is attached on its own; each detach leaves the other",
        async () => {
          kept = (await ask<{ pid: number }>("keep")).pid;
          const child = String(kept);
          const ours = agentSocketInodes(session);
          assertEquals(socketInodesOf(kept).filter((i) => ours.includes(i)), [], String(ours));

          const watchChild = async () => {
            const r = await cli(["watch", "forker.work", "-n", "2", "--pid", child, "--json"], env);
            assertEquals(r.code, 0, r.stderr);
            assertEquals(r.lines.filter((l) => l.type === "observation").length, 2, r.stdout);
          };
          assertEquals((await cli(["attach", child, "--json"], env)).code, 0);
          const childSession = sessionDirOf(kept);
          assert(childSession !== null && childSession !== session, String(childSession));
          await watchChild();

          assertEquals((await cli(["detach", "--pid", child, "--json"], env)).code, 0);
          assertEquals((await ask("report")).agent, true); // the parent's agent is untouched
          assertEquals(sessionDirOf(target.pid), session);

          assertEquals((await cli(["attach", child, "--json"], env)).code, 0);
          assertEquals((await cli(["detach", "--pid", pid, "--json"], env)).code, 0);
          assertEquals((await ask("report")).agent, false);
          await watchChild(); // the child's agent is untouched
          assertEquals((await cli(["detach", "--pid", child, "--json"], env)).code, 0);
        },
      );

      await t.step(
        "after detach a fork finds no agent: the at-fork hook does nothing",
        async () => {
          const s = await ask("fork");
          assertClean(s, [], "child after detach");
          assertEquals(sessionDirOf(target.pid), null);
        },
      );
      assertEquals(target.errText, "");
    } finally {
      if (kept) {
        try {
          Deno.kill(kept, "SIGKILL");
        } catch { /* gone */ }
      }
      await target.stop();
    }
  });
}
