// peeka line against a real target on every interpreter: the locals at a line, a condition over
// them, -n, and nothing left afterwards (no trace function, no sys.monitoring tool or event).
// One target per interpreter is shared by the steps.
import { assert, assertEquals } from "./helpers/assert.ts";
import {
  cli,
  cliEnv,
  pythons,
  REPO,
  StreamingCli,
  Target,
  type Target as TargetType,
  waitUntil,
} from "./helpers/env.ts";
import { renderHit } from "../commands/line/command.ts";

const SCRIPT = `${REPO}/tests/targets/line_target.py`;
const MODULE = Deno.readTextFileSync(`${REPO}/tests/targets/linemod.py`).split("\n");
const lineOf = (marker: string) => MODULE.findIndex((l) => l.includes(marker)) + 1;
const LOOP = lineOf("# LOOP BODY");
const SLOW = lineOf("# SLOW BODY");
const GEN = lineOf("# GEN BODY");

type Hit = { locals: Record<string, unknown>; line: number; func_name: string; count: number };
type State = {
  trace: string | null;
  tools: number[];
  local_events: number;
  user_calls: number;
  slow_trace: string;
  slow_done: number;
};

/** Starts `line`, waits until it is armed, runs the trigger, and waits for its end (-n). */
async function probe(env: Record<string, string>, args: string[], trigger: () => Promise<unknown>) {
  const c = new StreamingCli(["line", ...args], env);
  await c.waitFor((l) => l.event === "line_started" || l.type === "error");
  await trigger();
  const code = await c.done;
  return { code, hits: c.observations() as Hit[], cli: c };
}

const stopped = (c: StreamingCli) =>
  (c.lines.find((l) => l.event === "line_stopped") as { data: Record<string, unknown> }).data;

/** Nothing of the probe is left: the thread's trace function is `trace`, no tool or event. */
async function nothingLeft(target: TargetType, trace: string | null = null) {
  await waitUntil(
    async () => {
      const s = await target.ask("state") as unknown as State;
      return s.trace === trace && s.tools.length === 0 && s.local_events === 0;
    },
    3000,
    `the trace function is ${trace}, no sys.monitoring tool or local event is left`,
  );
}

for (const py of pythons()) {
  Deno.test(`${py.version}: line on a real target`, async (t) => {
    const target = await Target.start(py, "", { script: SCRIPT });
    const env = cliEnv();
    const pid = ["--pid", String(target.pid)];
    const monitoring = Number(py.version.split(".")[1]) >= 12;
    try {
      assertEquals((await cli(["attach", String(target.pid), "--json"], env)).code, 0);

      await t.step("a loop body: the loop variable's successive values; -n stops", async () => {
        const { code, hits, cli: c } = await probe(
          env,
          [`linemod.accumulate:${LOOP}`, "-n", "5", ...pid],
          () => target.ask("run 10"),
        );
        assertEquals(code, 0);
        assertEquals(hits.map((h) => h.locals.i), [0, 1, 2, 3, 4]);
        assertEquals(hits.map((h) => h.locals.total), [0, 0, 1, 3, 6]);
        assertEquals([hits[0].func_name, hits[0].line], ["linemod.accumulate", LOOP]);
        const end = stopped(c);
        assertEquals([end.reason, end.observations], ["times", 5]);
        const text = renderHit(hits[2]).split("\n");
        assert(text[0].includes(`linemod.accumulate:${LOOP} #3`), text.join("\n"));
        assert(text.includes("    i = 2"), text.join("\n"));
        await nothingLeft(target);
      });

      await t.step("a file path and a condition over the locals", async () => {
        const { hits } = await probe(
          env,
          [`targets/linemod.py:${LOOP}`, "--condition", "i % 2 == 1", "-n", "3", ...pid],
          () => target.ask("run 10"),
        );
        assertEquals(hits.map((h) => h.locals.i), [1, 3, 5]);
        await nothingLeft(target);
      });

      await t.step("--rate: the hits beyond it are dropped and counted", async () => {
        const c = new StreamingCli(
          ["line", `linemod.accumulate:${LOOP}`, "--rate", "2", ...pid],
          env,
        );
        await c.waitFor((l) => l.event === "line_started");
        await target.ask("run 100");
        c.kill("SIGINT");
        await c.done;
        const end = stopped(c) as Record<string, number>;
        assert(end.observations >= 1 && end.observations <= 4, JSON.stringify(end));
        assertEquals(end.observations, c.observations().length);
        assertEquals([end.hits, end.observations + end.rate_dropped], [100, 100]);
        await nothingLeft(target);
      });

      await t.step("a generator's line across its suspensions", async () => {
        const { hits } = await probe(
          env,
          [`linemod.countdown:${GEN}`, "-n", "3", ...pid],
          () => target.ask("run 1"),
        );
        assertEquals(hits.map((h) => h.locals.n), [3, 2, 1]);
        await nothingLeft(target);
      });

      await t.step("the target's own trace function survives the probe", async () => {
        await target.ask("settrace on");
        try {
          const c = new StreamingCli(["line", `linemod.accumulate:${LOOP}`, ...pid], env);
          await c.waitFor((l) => l.event === "line_started");
          const before = (await target.ask("state") as unknown as State).user_calls;
          await target.ask("run 10");
          c.kill("SIGINT");
          await c.done;
          const s = await target.ask("state") as unknown as State;
          assertEquals(s.trace, "user_tracer");
          assert(s.user_calls > before, "the user's tracer still hears calls");
          // Before 3.12 a thread with a trace function of its own is left alone, and counted.
          assertEquals(c.observations().length, monitoring ? 10 : 0);
          assertEquals(stopped(c).busy_skipped, monitoring ? 0 : 1);
          await nothingLeft(target, "user_tracer");
        } finally {
          await target.ask("settrace off");
        }
        await nothingLeft(target);
      });

      await t.step("the CLI killed while the line's frame runs: nothing left", async () => {
        const done = (await target.ask("state") as unknown as State).slow_done;
        const c = new StreamingCli(["line", `linemod.slow_loop:${SLOW}`, ...pid], env);
        try {
          await c.waitFor((l) => l.event === "line_started");
          await target.ask("slow 40 20");
          await c.waitFor(() => c.observations().length >= 2);
        } finally {
          c.kill("SIGKILL");
          await c.done;
        }
        await waitUntil(
          async () => (await target.ask("state") as unknown as State).slow_done > done,
          5000,
          "the slow loop ends",
        );
        const s = await target.ask("state") as unknown as State;
        assertEquals(s.slow_trace, "None", "its own frame saw no trace function by its end");
        await nothingLeft(target);
      });

      await t.step("clear errors: a line with no code, a name that is not a local", async () => {
        const none = await cli(["line", "linemod.accumulate:3", "--json", ...pid], env);
        assertEquals([none.code, none.lines[0]?.code], [1, "NOT_FOUND"], JSON.stringify(none));
        assert(/lines that do: \d+-\d+/.test(String(none.lines[0].error)), JSON.stringify(none));
        const bad = await cli(
          ["line", `linemod.accumulate:${LOOP}`, "--condition", "j > 1", "--json", ...pid],
          env,
        );
        assertEquals([bad.code, bad.lines[0].code], [1, "BAD_CONDITION"]);
        const form = await cli(["line", "linemod.accumulate", "--json", ...pid], env);
        assertEquals([form.code, form.lines[0].code], [1, "BAD_ARGS"]);
      });

      assertEquals((await cli(["detach", "--json", ...pid], env)).code, 0);
      assertEquals(target.errText, "");
    } finally {
      await target.stop();
    }
  });
}
