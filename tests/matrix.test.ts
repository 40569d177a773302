// The spine on every interpreter: attach, thread, detach against real
// processes of three shapes, with no gdb on PATH.
import { assert, assertEquals } from "./helpers/assert.ts";
import {
  cli,
  cliEnv,
  type Python,
  pythons,
  sessionDirOf,
  sleep,
  Target,
  waitUntil,
} from "./helpers/env.ts";

async function attachThreadDetach(t: Target, env: Record<string, string>) {
  const a = await cli(["attach", String(t.pid), "--json"], env);
  assertEquals(a.code, 0, a.stderr);
  assertEquals(a.lines[0], {
    type: "status",
    level: "info",
    message: `Attaching to process ${t.pid}`,
  });
  const ok = a.lines[1] as { type: string; command: string; data: Record<string, unknown> };
  assertEquals([ok.type, ok.command, ok.data.pid], ["success", "attach", t.pid]);
  // 3.14+ attaches through PEP 768 when a thread runs Python soon enough, else through ptrace.
  const modern = Number(t.python.version.split(".")[1]) >= 14;
  assert(
    ok.data.mechanism === "ptrace" || (modern && ok.data.mechanism === "pep768"),
    String(ok.data.mechanism),
  );
  assert(
    String(ok.data.python_version).startsWith(t.python.version),
    `version ${ok.data.python_version}`,
  );

  const th = await cli(["thread", "--json"], env);
  assertEquals(th.code, 0, th.stderr);
  const result = th.lines[0] as {
    type: string;
    command: string;
    data: { threads: { name: string; stack: { function: string }[] }[] };
  };
  assertEquals([result.type, result.command], ["result", "thread"]);
  const d = await cli(["detach", "--json"], env);
  assertEquals(d.code, 0, d.stderr);
  assertEquals((d.lines[0] as { type: string }).type, "success");
  return result.data.threads;
}

async function assertClean(t: Target, tasksBefore: number) {
  await waitUntil(
    () => t.taskCount() === tasksBefore,
    3000,
    `process ${t.pid} is back to ${tasksBefore} threads`,
  );
  assertEquals(sessionDirOf(t.pid), null, "session directory removed");
}

for (const py of pythons()) {
  Deno.test(`${py.version}: idle target (every thread in a system call) attaches, lists threads, detaches clean`, async () => {
    const t = await Target.start(py, "idle");
    try {
      const env = cliEnv();
      const before = await t.ask();
      const tasks = t.taskCount();
      const threads = await attachThreadDetach(t, env);
      const names = threads.map((x) => x.name).sort();
      assertEquals(names, ["MainThread", "sleeper"]);
      const main = threads.find((x) => x.name === "MainThread")!;
      assert(main.stack.some((f) => f.function === "serve"), JSON.stringify(main.stack));
      await assertClean(t, tasks);
      const after = await t.ask(); // accept() was restarted as if nothing happened
      assertEquals(after, before);
      assertEquals(t.errText, "");
    } finally {
      await t.stop();
    }
  });

  Deno.test(`${py.version}: busy target (pure-Python loop) gives identical results with and without attach`, async () => {
    const t = await Target.start(py, "busy");
    try {
      const env = cliEnv();
      await t.waitFor((l) => l.startsWith("chunk 1 "));
      const tasks = t.taskCount();
      const threads = await attachThreadDetach(t, env);
      assert(
        threads[0].stack.some((f) => f.function === "chunk_value" || f.function === "busy"),
        JSON.stringify(threads),
      );
      await assertClean(t, tasks);
      const n = t.lines.filter((l) => l.startsWith("chunk")).length + 3;
      await t.waitFor((l) => l.startsWith(`chunk ${n} `), 20000);
      const got = t.lines.filter((l) => l.startsWith("chunk")).slice(0, n);
      const ref = await new Deno.Command(py.path, {
        args: [new URL("./targets/target.py", import.meta.url).pathname, "reference", String(n)],
      }).output();
      assertEquals(got, new TextDecoder().decode(ref.stdout).trim().split("\n"));
    } finally {
      await t.stop();
    }
  });

  Deno.test(`${py.version}: stuck target (GIL held in a long C call) times out clearly, keeps running, ends with no half agent`, async () => {
    const t = await Target.start(py, "stuck");
    try {
      const env = cliEnv();
      const tasks = t.taskCount();
      await t.ask("stuck 2.5");
      await t.waitFor((l) => l === "stuck-start");
      const a = await cli(["attach", String(t.pid), "--timeout", "800", "--json"], env);
      assertEquals(a.code, 1);
      const err = a.lines.find((l) => l.type === "error") as { code: string; error: string };
      assertEquals(err.code, "ATTACH_TIMEOUT");
      // Mostly no safe point is reached; under load the bootstrap may begin just before the C
      // call, and then its agent cannot answer: cancelled, with its own message.
      assert(
        /safe point|began starting/.test(err.error) &&
          a.stderr.split("\n").filter(Boolean).length === 1,
        a.stderr,
      );
      // it names the thread holding the GIL and where (read from outside), and offers dump
      assert(/peeka dump \d+/.test(err.error), err.error);
      if (/safe point/.test(err.error)) {
        assert(/holds the GIL in calibrated_c_call .*target.py:53/.test(err.error), err.error);
      }
      assert(t.alive() && !"tT".includes(t.state()), "target keeps running, not stopped");
      await t.waitFor((l) => l === "stuck-end", 20000);
      await sleep(300);
      // Either a complete agent or none: here the cancelled bootstrap must do nothing.
      assertEquals(sessionDirOf(t.pid), null);
      await waitUntil(
        () => t.taskCount() === tasks,
        3000,
        "the C-call thread ended and nothing was left",
      );
      const r = await t.ask();
      assertEquals(r.peeka_agent, false);
      // ...and a later attach works.
      await attachThreadDetach(t, env);
      await assertClean(t, tasks);
      assertEquals(t.errText, "");
    } finally {
      await t.stop();
    }
  });
}

export type { Python };
