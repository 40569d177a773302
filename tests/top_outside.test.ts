// top with no agent, on every interpreter: a target never attached (tests/targets/stuck.py: its
// main thread holds the GIL in a C call that does not return, two others are deadlocked) is
// profiled from outside as `dump` reads it. The table and the folded stacks name the functions
// involved, the output says no agent was used, and nothing is ever left in the target: no
// session, no thread, and it computes what it would have once the C call ends.
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, pythons, REPO, sessionDirOf, Target } from "./helpers/env.ts";

const SCRIPT = `${REPO}/tests/targets/stuck.py`;
type Summary = Record<string, number | string | boolean>;

for (const py of pythons()) {
  Deno.test(`${py.version}: top with no agent on a process stuck in C`, async (t) => {
    const target = await Target.start(py, "60", { script: SCRIPT });
    const env = cliEnv();
    const dir = Deno.makeTempDirSync();
    try {
      const tasks = target.taskCount();
      const pid = String(target.pid);

      await t.step("not attached: sampled from outside; table and folded stacks", async () => {
        const file = `${dir}/out.folded`;
        const r = await cli([
          ...["top", "--pid", pid, "-i", "5ms", "-d", "1", "--idle"],
          ...["--flamegraph", file, "--format", "collapsed", "--json"],
        ], env);
        assertEquals(r.code, 0, r.stderr);
        const said = r.lines.find((l) => l.type === "status")?.message;
        assert(/read from outside, no agent/.test(String(said)), String(said));
        const end = r.lines.find((l) => l.event === "top_stopped")?.data as Summary;
        assertEquals([end.sampler, end.agent], ["outside", false], JSON.stringify(end));
        assert(Number(end.samples_asked) > 0, JSON.stringify(end));
        assert(Number(end.samples_taken) >= 0.5 * Number(end.samples_asked), JSON.stringify(end));
        // Three threads each sample, none idle-skipped (--idle).
        assertEquals(end.thread_samples, 3 * Number(end.samples_taken));
        const final = r.lines.find((l) => l.final === true) as {
          functions: { function: string; file: string; own: number }[];
        };
        const own = (fn: string) => final.functions.find((f) => f.function === fn);
        for (const fn of ["hold_gil_in_c", "take_first_then_second", "take_second_then_first"]) {
          assertEquals(own(fn)?.own, end.samples_taken, JSON.stringify(final.functions));
          assertEquals(own(fn)?.file, SCRIPT);
        }
        const folded = Deno.readTextFileSync(file).split("\n").filter((l) => l !== "");
        assert(
          folded.some((l) => /^MainThread;<module> \([^;]*\);hold_gil_in_c \([^;]*\) \d+$/.test(l)),
          folded.join("\n"),
        );
      });

      await t.step("--sampler outside: the thread asleep in C is left out", async () => {
        const r = await cli(
          ["top", "--pid", pid, "--sampler", "outside", "-i", "5ms", "-d", "0.5", "--json"],
          env,
        );
        assertEquals(r.code, 0, r.stderr);
        const end = r.lines.find((l) => l.event === "top_stopped")?.data as Summary;
        // The OS says the main thread sleeps (nanosleep), found by its native id read from
        // outside. The other two wait in futex calls, which could be the GIL: those are
        // judged by their innermost function, which does not look like a wait here.
        assertEquals(end.idle_skipped, end.samples_taken, JSON.stringify(end));
        const final = r.lines.find((l) => l.final === true) as {
          functions: { function: string }[];
        };
        const names = final.functions.map((f) => f.function);
        assert(!names.includes("hold_gil_in_c"), names.join());
        assert(names.includes("take_first_then_second"), names.join());
      });

      assertEquals(sessionDirOf(target.pid), null, "no agent session was made");
      assertEquals(target.taskCount(), tasks, "no thread was added to the target");
      Deno.kill(target.pid, "SIGUSR1"); // ends the C call: the target finishes its work
      await target.waitFor((l) => l.startsWith("woke"));
      assertEquals(target.lines.at(-1), "woke True 499500 3");
    } finally {
      await target.stop();
      Deno.removeSync(dir, { recursive: true });
    }
  });
}

Deno.test("top --sampler outside: a process that is not Python gets a clear error", async () => {
  const other = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    const r = await cli(
      ["top", "--pid", String(other.pid), "--sampler", "outside", "-d", "1", "--json"],
      cliEnv(),
    );
    assertEquals(r.code, 1);
    const error = r.lines.find((l) => l.type === "error")!;
    assertEquals(error.code, "NOT_PYTHON", JSON.stringify(r.lines));
  } finally {
    other.kill("SIGKILL");
    await other.status;
  }
});
