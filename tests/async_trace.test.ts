// trace and watch of async code against a real asyncio target (stdlib only) on every interpreter:
// an awaited child is one call with its wall time and its awaiting apart, the caller's own time
// excludes it, the loop's other tasks stay out of the tree, watch names the task; and the first
// traced call is not charged for the setup. One target per interpreter, shared by the steps.
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, pythons, REPO, StreamingCli, Target } from "./helpers/env.ts";
import { FRAMEWORK_TARGETS, frameworkPython } from "./helpers/frameworks.ts";
import { type Obs, observe, restored } from "./helpers/observe.ts";
import { renderTree, type TraceNode } from "../commands/trace/command.ts";

const SHOP = `${REPO}/tests/targets/async_shop.py`;
const SLEEP_MS = 50; // async_shop.SLEEP
const TICK_MS = 10; // async_shop.TICK
const TIMEOUT_MS = 20; // async_shop.TIMEOUT
// A sleep's timer starts before its frame suspends: a stall of the process in between (a busy
// machine) moves a few ms of the sleep from awaiting to running. Its wall time is exact.
const AWAITED = 0.8;

type AsyncTree = Obs & {
  call_tree: TraceNode[];
  self_time_ms: number;
  awaiting_ms: number;
  task?: string;
};

/** GET over HTTP/1.0 (the server closes the connection): the JSON body. */
async function httpGet(port: number, path: string): Promise<unknown> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.0\r\nHost: localhost\r\n\r\n`));
    const text = await new Response(conn.readable).text();
    return JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
  } catch (e) {
    conn.close();
    throw e;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Every function name in a tree. */
function allNames(nodes: TraceNode[]): string[] {
  return nodes.flatMap((n) => [n.function, ...allNames(n.children)]);
}

/** The endpoint's tree: its child once, with the sleep it awaited, and its own time small. */
function assertAwaitedChild(o: AsyncTree, sleepMs: number) {
  const show = JSON.stringify(o);
  assertEquals(o.call_tree.length, 1, show);
  const [child] = o.call_tree;
  assert(child.function.endsWith(".fetch_rate"), show);
  assertEquals(child.count, 1, "the awaited child is one call, not one per resume: " + show);
  assert(child.total_ms >= sleepMs - 1, "its wall time covers its sleep: " + show);
  assert(Number(child.awaiting_ms) >= AWAITED * sleepMs, "its sleep is awaiting: " + show);
  assert(o.awaiting_ms >= AWAITED * sleepMs, "the root awaited as long: " + show);
  assert(o.duration_ms >= child.total_ms, show);
  assert(o.self_time_ms < sleepMs / 2, "the endpoint's own time leaves out the await: " + show);
}

for (const py of pythons()) {
  Deno.test(`${py.version}: trace and watch of async code`, async (t) => {
    const target = await Target.start(py, "", { script: SHOP });
    const env = cliEnv();
    const run = (scenario: string, n = 1) =>
      target.ask(`run ${scenario} ${n}`) as unknown as Promise<unknown[]>;
    const trace = async (args: string[], scenario: string, n = 1) => {
      let reply: unknown[] = [];
      const { obs, cli: c } = await observe(env, ["trace", ...args], async () => {
        reply = await run(scenario, n);
      });
      const stopped = c.lines.find((l) => l.event === "trace_stopped") as {
        data: Record<string, number>;
      };
      return { trees: obs as AsyncTree[], reply, summary: stopped.data };
    };
    try {
      assertEquals((await cli(["attach", String(target.pid), "--json"], env)).code, 0);
      const untraced = await run("checkout");
      const monitoring = Number(py.version.split(".")[1]) >= 12;

      // First, on a fresh agent: the setup a trace needs is done before its first call.
      // A trivial call takes ~5-20 us traced; what stays on the first one is CPython's (3.12+
      // instruments a code object the first time it runs under a profile function: up to ~10x
      // on 3.14), while setup charged to it (naming codes scanned sys.modules) made it ~500x.
      await t.step("the first traced call is not an outlier", async () => {
        const { trees } = await trace(["async_shop.quick", "-n", "10", "--rate", "0"], "quick", 10);
        assertEquals(trees.length, 10);
        const [first, ...rest] = trees.map((o) => o.duration_ms);
        assertEquals(trees[0].call_tree.map((n) => n.function.split(".").pop()), ["helper"]);
        assert(
          first <= 25 * median(rest),
          `first ${first} ms vs ${median(rest)} ms for the next ones: ${
            trees.map((o) => o.duration_ms)
          }`,
        );
        await restored(target);
      });

      await t.step("an awaited child: once, its wall time, its awaiting apart", async () => {
        const { trees: [o], reply } = await trace(["async_shop.endpoint", "-n", "1"], "checkout");
        assertAwaitedChild(o, SLEEP_MS);
        assertEquals(o.task, "checkout-0");
        const names = allNames(o.call_tree);
        assert(
          !names.some((n) => /\.(crunch|busy|checkout|<genexpr>)$/.test(n)),
          "another task's frames are not in the tree: " + names,
        );
        assertEquals(reply, untraced, "the target's results are unchanged");
        assertEquals(reply, [[15, true]]);
        const text = renderTree(o).split("\n");
        assert(/ task=checkout-0/.test(text[0]), text.join("\n"));
        assert(/\(own [\d.]+ms, awaiting [\d.]+ms\)$/.test(text[1]), text.join("\n"));
        assert(
          /^ {4}`---\[.*\] .*fetch_rate\(\) \(awaiting [\d.]+ms\)$/.test(text[2]),
          text.join("\n"),
        );
        await restored(target);
      });

      await t.step("a child cancelled by a timeout: raised, then the next child", async () => {
        const { trees: [o], reply } = await trace(["async_shop.guarded", "-n", "1"], "guarded");
        assertEquals(reply, [15]);
        const show = JSON.stringify(o);
        const rate = o.call_tree.find((n) => n.function.endsWith(".fetch_rate"));
        assert(rate && rate.count === 1 && Number(rate.awaiting_ms) >= AWAITED * SLEEP_MS, show);
        assert(o.self_time_ms < SLEEP_MS / 2, show);
        // 3.12+: wait_for runs the child in this task (before, in a task of its own: not here).
        const slow = o.call_tree.find((n) => n.function.endsWith(".slow_rate"));
        if (monitoring) {
          assert(slow && slow.count === 1 && slow.raised === 1, show);
          assert(
            slow.total_ms >= TIMEOUT_MS - 1 && Number(slow.awaiting_ms) >= AWAITED * TIMEOUT_MS,
            show,
          );
        } else assertEquals(slow, undefined, show);
        await restored(target);
      });

      await t.step("an async generator: one call per step, its awaits apart", async () => {
        const { trees: [o], reply } = await trace(["async_shop.consume", "-n", "1"], "stream");
        assertEquals(reply, [5]);
        const show = JSON.stringify(o);
        assertEquals(o.call_tree.length, 1, show);
        const [steps] = o.call_tree;
        assert(steps.function.endsWith(".ticks"), show);
        assertEquals(steps.count, 4, "three values and the step that ends it: " + show);
        assert(Number(steps.awaiting_ms) >= AWAITED * 3 * TICK_MS, show);
        assert(Number(steps.max_ms) >= TICK_MS - 1, show);
        assert(o.self_time_ms < 3 * TICK_MS / 2, show);
        await restored(target);
      });

      await t.step(
        "another task's call while ours is suspended is counted, not traced",
        async () => {
          const { trees, reply, summary } = await trace(
            ["async_shop.endpoint", "-n", "1"],
            "checkout_pair",
          );
          assertEquals(reply, [[15, 30, true]]);
          assertEquals(trees.length, 1);
          assertAwaitedChild(trees[0], SLEEP_MS);
          assertEquals([summary.calls, summary.overlap_skipped], [2, 1], JSON.stringify(summary));
          await restored(target);
        },
      );

      await t.step(
        monitoring
          ? "other tasks run without the profile function while the traced call is suspended"
          : "other tasks run under the (ignoring) profile function while it is suspended (before 3.12)",
        async () => {
          const { trees: [o], reply } = await trace(
            ["async_shop.endpoint", "-n", "1"],
            "checkout_profiled",
          );
          assertAwaitedChild(o, SLEEP_MS);
          const [profiledSteps] = reply as number[];
          if (monitoring) assertEquals(profiledSteps, 0);
          else assert(profiledSteps > 0, String(profiledSteps));
          await restored(target);
        },
      );

      await t.step("watch of a coroutine names the task it runs in", async () => {
        const c = new StreamingCli(["watch", "async_shop.fetch_rate", "-n", "2"], env);
        await c.waitFor((l) => l.event === "watch_started");
        await run("checkout");
        assertEquals(await c.done, 0);
        const obs = c.observations() as (Obs & { task: string })[];
        assertEquals(obs.map((o) => o.task).sort(), ["checkout-0", "rival"], JSON.stringify(obs));
        assert(obs.every((o) => o.duration_ms >= SLEEP_MS - 1), JSON.stringify(obs));
        await restored(target);
      });

      assertEquals((await cli(["detach", "--json"], env)).code, 0);
      assertEquals(target.errText, "");
    } finally {
      await target.stop();
    }
  });
}

for (const py of pythons()) {
  Deno.test(`${py.version}: trace and watch of a FastAPI endpoint under uvicorn`, async (t) => {
    const fw = frameworkPython(py);
    const target = await Target.start(fw.python, "", {
      script: `${FRAMEWORK_TARGETS}/fastapi_shop.py`,
      env: fw.env,
    });
    const env = cliEnv();
    const get = (path: string) => httpGet(target.port, path);
    // The quote and, on the same loop meanwhile, requests that keep it busy.
    const requests = () =>
      Promise.all([get("/quote/EUR?amount=10"), ...[1, 2, 3, 4].map(() => get("/crunch"))]);
    try {
      assertEquals((await cli(["attach", String(target.pid), "--json"], env)).code, 0);
      const untraced = await requests();

      await t.step("the endpoint's awaited child: once, with its sleep as awaiting", async () => {
        let replies: unknown[] = [];
        const { obs: [o] } = await observe(
          env,
          ["trace", "fastapi_shop.quote", "-n", "1"],
          async () => {
            replies = await requests();
          },
        );
        const tree = o as AsyncTree;
        assertAwaitedChild(tree, SLEEP_MS);
        assert(typeof tree.task === "string" && tree.task.length > 0, JSON.stringify(tree));
        const names = allNames(tree.call_tree);
        assert(
          !names.some((n) => /crunch/.test(n)),
          "other requests are not in the tree: " + names,
        );
        assertEquals(replies, untraced, "the answers are unchanged");
        assertEquals(replies[0], { cur: "EUR", total: 15 });
      });

      await t.step("watch of the child names the request's task", async () => {
        const { obs: [o] } = await observe(
          env,
          ["watch", "fastapi_shop.fetch_rate", "-n", "1"],
          requests,
        );
        const task = (o as Obs & { task?: string }).task;
        assert(typeof task === "string" && task.length > 0, JSON.stringify(o));
        assert(o.duration_ms >= SLEEP_MS - 1, JSON.stringify(o));
      });

      assertEquals((await cli(["detach", "--json"], env)).code, 0);
      assertEquals(target.errText, "");
    } finally {
      await target.stop();
    }
  });
}
