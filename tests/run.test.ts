// peeka run on every interpreter: a script that exits in ~200 ms is watched from its first call
// (every call seen, the count exact) and its exit status is peeka's; an uncaught exception is
// shown as python shows it and exits 1; SIGTERM to peeka reaches the script and nothing is left.
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, pythons, REPO, StreamingCli } from "./helpers/env.ts";

const TARGETS = `${REPO}/tests/targets`;

type Line = Record<string, unknown>;
const data = (l: Line) => (l.data ?? {}) as Record<string, unknown>;
const observations = (lines: Line[]) => lines.filter((l) => l.type === "observation");
const event = (lines: Line[], name: string) => lines.find((l) => l.event === name);

function gone(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return "ZX".includes(stat.slice(stat.lastIndexOf(")") + 2)[0]);
  } catch {
    return true;
  }
}

for (const py of pythons()) {
  Deno.test(`${py.version}: run`, async (t) => {
    const env = cliEnv();
    const run = (script: string, args: string[], command: string[]) =>
      cli(["run", "--python", py.path, `${TARGETS}/${script}`, ...args, "--", ...command], env);

    await t.step("a script of the module's own functions: every call, exit status", async () => {
      const r = await run("run_short.py", ["3"], ["watch", "run_short.work", "--json"]);
      assertEquals(r.code, 3, r.stderr);
      assert(
        r.stdout.includes("script argv=['3'] path0=True name=__main__"),
        "the script's own view of argv, sys.path[0] and __name__: " + r.stdout.slice(0, 300),
      );
      const seen = observations(r.lines);
      assertEquals(seen.map((o) => o.args), [...Array(40).keys()].map((i) => [i]));
      assertEquals(seen.map((o) => o.result), [...Array(40).keys()].map((i) => i * 2));
      // a script that never imports threading: its main thread is still named
      assertEquals((seen[0].thread as Line).name, "MainThread");
      assertEquals(data(event(r.lines, "watch_stopped")!).calls, 40);
      assertEquals(data(event(r.lines, "run_exited")!).status, 3);
      assertEquals(r.stderr, "", "nothing of peeka's in the script's stderr");
    });

    await t.step("a function loaded before the script: only the script's calls", async () => {
      // the bootstrap's own os.path calls come before the command is in place
      // the script's own options are its own, not peeka's (passed through unparsed)
      const stack = await run("run_short.py", ["0", "--verbose", "-x"], [
        "stack",
        "posixpath.join",
        "--json",
      ]);
      assertEquals(stack.code, 0, stack.stderr);
      assert(stack.stdout.includes("script argv=['0', '--verbose', '-x']"), stack.stdout);
      assertEquals(observations(stack.lines).length, 40);
    });

    await t.step(
      "line file.py:N of the script's own function: every run of that line",
      async () => {
        const r = await run("run_short.py", ["0"], [
          "line",
          `${TARGETS}/run_short.py:9`,
          "--rate",
          "0",
          "--json",
        ]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(observations(r.lines).map((o) => (o.locals as Line).i), [...Array(40).keys()]);
      },
    );

    await t.step("monitor of a script shorter than a cycle: the partial cycle", async () => {
      const r = await run("run_short.py", ["0"], ["monitor", "run_short.work", "--json"]);
      assertEquals(r.code, 0, r.stderr);
      const [cycle] = observations(r.lines);
      assertEquals([cycle.calls, cycle.partial, cycle.cycle], [40, true, 1]);
    });

    await t.step("an uncaught exception: python's traceback, status 1, seen by watch", async () => {
      const r = await run("run_raise.py", [], ["watch", "run_raise.work", "-e", "--json"]);
      assertEquals(r.code, 1, r.stderr);
      assert(r.stderr.startsWith("Traceback (most recent call last):\n"), r.stderr);
      assert(r.stderr.endsWith("ValueError: boom at 3\n"), r.stderr);
      assert(!r.stderr.includes("peeka"), `no frame of ours: ${r.stderr}`);
      const [failed] = observations(r.lines);
      assertEquals([failed.args, (failed.exception as Line).type], [[3], "ValueError"]);
      assertEquals(data(event(r.lines, "watch_stopped")!).calls, 4);
    });

    await t.step("SIGTERM to peeka reaches the script; nothing is left running", async () => {
      const s = new StreamingCli(
        [
          "run",
          "--python",
          py.path,
          `${TARGETS}/run_forever.py`,
          "--",
          "watch",
          "run_forever.work",
        ],
        env,
      );
      let pid = 0;
      try {
        pid = Number(data(await s.waitFor((l) => l.event === "run_started")).pid);
        await s.waitFor((l) => l.type === "observation");
        s.kill("SIGTERM");
        assertEquals(await s.done, 128 + 15, s.stderr);
        assert(gone(pid), `the script ${pid} still runs`);
        assertEquals(data(event(s.lines, "run_exited")!).status, 143);
      } finally {
        s.kill("SIGKILL");
        if (pid && !gone(pid)) Deno.kill(pid, "SIGKILL");
        await s.done;
      }
    });
  });
}
