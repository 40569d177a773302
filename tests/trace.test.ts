// trace against a real target on every interpreter: the tree of a known program.
// One target per interpreter is shared by the steps (restored after each).
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, pythons, StreamingCli, Target } from "./helpers/env.ts";
import { APP, type Obs, observe, restored } from "./helpers/observe.ts";
import { renderTree, type TraceNode } from "../commands/trace/command.ts";

type Tree = Obs & {
  call_tree: TraceNode[];
  self_time_ms: number;
  node_count: number;
  nodes_cut: number;
};

const child = (nodes: TraceNode[], name: string) => nodes.find((n) => n.function === name);
const names = (nodes: TraceNode[]) => nodes.map((n) => n.function);

for (const py of pythons()) {
  Deno.test(`${py.version}: trace on a real target`, async (t) => {
    const target = await Target.start(py, "", { script: APP });
    const env = cliEnv();
    const run = (scenario: string, n = 1) => target.ask(`run ${scenario} ${n}`);
    const trace = async (args: string[], scenario: string, n = 1) => {
      const { obs } = await observe(
        env,
        ["trace", ...args, "-n", String(n)],
        () => run(scenario, n),
      );
      return obs as Tree[];
    };
    try {
      assertEquals((await cli(["attach", String(target.pid), "--json"], env)).code, 0);

      await t.step(
        "the tree of a known program: shape, counts, timings, the slowest branch",
        async () => {
          const [o] = await trace(["shop.Calculator.calculate"], "calculate");
          assertEquals([o.func_name, o.success, o.args], ["shop.Calculator.calculate", true, [[
            1,
            2,
            3,
          ]]]);
          assertEquals(names(o.call_tree), [
            "shop.Calculator._validate",
            "shop.Calculator._compute",
            "shop.log_info",
          ]);
          const [validate, compute, log] = o.call_tree;
          assertEquals(validate.children.map((n) => [n.function, n.count]), [["shop.check", 3]]);
          assertEquals(compute.children.map((n) => [n.function, n.count]), [["shop.square", 3]]);
          assertEquals(log.children, [], "json.dumps is standard library: hidden by default");
          assert(compute.slowest && !validate.slowest && !log.slowest);
          assert(compute.total_ms >= 29 && o.duration_ms >= compute.total_ms, JSON.stringify(o));
          assert(compute.self_ms >= 29, "time.sleep (C) counts as _compute's own time");
          assert(
            Math.abs(
              o.self_time_ms + validate.total_ms + compute.total_ms + log.total_ms - o.duration_ms,
            ) < 0.01,
          );
          const text = renderTree(o).split("\n");
          assertEquals(text[1].startsWith("`---["), true, text.join("\n"));
          assert(
            text.some((l) => /^ {4}\+---\[.*\] shop\.Calculator\._compute\(\).*← slowest$/.test(l)),
            text.join("\n"),
          );
          assert(
            text.some((l) => /^ {4}\| {3}`---\[.*\] shop\.square\(\) ×3$/.test(l)),
            text.join("\n"),
          );
          await restored(target);
        },
      );

      await t.step("-d limits the depth, --min-duration prunes short calls", async () => {
        const [shallow] = await trace(["shop.Calculator.calculate", "-d", "1"], "calculate");
        assertEquals(names(shallow.call_tree).length, 3);
        assert(shallow.call_tree.every((n) => n.children.length === 0));
        const [slow] = await trace(
          ["shop.Calculator.calculate", "--min-duration", "20"],
          "calculate",
        );
        assertEquals(names(slow.call_tree), ["shop.Calculator._compute"]);
        await restored(target);
      });

      await t.step(
        "each node's share of its root: percent fields and [n%] in the text",
        async () => {
          const [o] = await trace(["shop.Calculator.calculate"], "calculate");
          const walk = (nodes: TraceNode[], parentPercent: number) => {
            const sum = nodes.reduce((s, n) => s + n.percent!, 0);
            assert(sum <= parentPercent + 0.3, `children ${sum}% under ${parentPercent}%`);
            for (const n of nodes) {
              assert(Math.abs(n.percent! - 100 * n.total_ms / o.duration_ms) <= 0.06, String(n));
              walk(n.children, n.percent!);
            }
          };
          walk(o.call_tree, 100);
          const compute = child(o.call_tree, "shop.Calculator._compute")!;
          assert(compute.percent! > 50, "the sleeping branch takes most of the root");
          assert(
            renderTree(o).includes(`[${compute.percent!.toFixed(1)}%] shop.Calculator._compute()`),
            renderTree(o),
          );
          const [plain] = await trace(
            ["shop.Calculator.calculate", "--percent", "false"],
            "calculate",
          );
          assert(plain.call_tree.every((n) => n.percent === undefined));
          await restored(target);
        },
      );

      await t.step("--expand: deeper under the slowest child, or a named one", async () => {
        const trees = await trace(
          ["shop.Calculator.calculate", "-d", "1", "--expand", "slowest"],
          "calculate",
          2,
        );
        const [first, second] = trees.map((o) => child(o.call_tree, "shop.Calculator._compute")!);
        assertEquals([first.children, first.expanded], [[], undefined]);
        assertEquals(trees[0].expand_next, "shop.Calculator._compute");
        assertEquals(second.expanded, true);
        assertEquals(second.children.map((n) => [n.function, n.count]), [["shop.square", 3]]);
        assert(child(trees[1].call_tree, "shop.Calculator._validate")!.children.length === 0);
        assert(renderTree(trees[1]).includes("shop.Calculator._compute()"));
        const [named] = await trace(
          ["shop.Calculator.calculate", "-d", "1", "--expand", "shop.Calculator._validate"],
          "calculate",
        );
        const validate = child(named.call_tree, "shop.Calculator._validate")!;
        assertEquals(validate.children.map((n) => [n.function, n.count]), [["shop.check", 3]]);
        assertEquals(child(named.call_tree, "shop.Calculator._compute")!.children, []);
        // recursion: one level more per call, down the slowest branch
        const fibs = await trace(["shop.fib", "-d", "1", "--expand", "slowest"], "fib", 3);
        const depth = (nodes: TraceNode[]): number =>
          nodes.length ? 1 + Math.max(...nodes.map((n) => depth(n.children))) : 0;
        assertEquals(fibs.map((o) => depth(o.call_tree)), [1, 2, 3]);
        await restored(target);
      });

      await t.step("--skip-builtin false shows C and standard-library calls", async () => {
        const [o] = await trace(
          ["shop.Calculator.calculate", "--skip-builtin", "false"],
          "calculate",
        );
        const compute = child(o.call_tree, "shop.Calculator._compute")!;
        const sleep = child(compute.children, "time.sleep");
        assert(sleep && sleep.slowest && sleep.total_ms >= 29, JSON.stringify(compute));
        assert(
          child(child(o.call_tree, "shop.log_info")!.children, "json.dumps"),
          JSON.stringify(o),
        );
        await restored(target);
      });

      await t.step("recursion: one tree per outermost call, nested calls are nodes", async () => {
        const c = new StreamingCli(["trace", "shop.fib", "-d", "2"], env);
        await c.waitFor((l) => l.event === "trace_started");
        await run("fib", 2); // fib(6), twice
        await c.waitFor(() => c.observations().length >= 2);
        c.kill("SIGINT");
        await c.done;
        const trees = c.observations() as Tree[];
        assertEquals(trees.length, 2, JSON.stringify(c.lines));
        const [o] = trees;
        assertEquals(o.call_tree.map((n) => [n.function, n.count]), [["shop.fib", 2]]);
        assertEquals(o.call_tree[0].children.map((n) => [n.function, n.count]), [["shop.fib", 4]]);
        assert(o.call_tree[0].children[0].children.length === 0, "depth 2");
        await restored(target);
      });

      await t.step("exceptions: a raising child is marked, a raising root too", async () => {
        const [bad] = await trace(["shop.Calculator.calculate"], "calculate_bad");
        assertEquals([bad.success, bad.exception?.type], [false, "ValueError"]);
        const validate = child(bad.call_tree, "shop.Calculator._validate")!;
        assertEquals([validate.raised, validate.children[0].count, validate.children[0].raised], [
          1,
          2,
          1,
        ]);
        const [risky] = await trace(["shop.risky"], "risky");
        assertEquals(risky.success, true);
        assertEquals(risky.call_tree.map((n) => [n.function, n.raised]), [["shop.check", 1], [
          "shop.square",
          0,
        ]]);
        await restored(target);
      });

      await t.step("a coroutine: one tree across its suspensions", async () => {
        const [o] = await trace(["shop.fetch_tree"], "fetch_tree");
        assertEquals(o.call_tree.map((n) => [n.function, n.count]), [["shop.square", 2]]);
        assert(o.duration_ms >= 19, String(o.duration_ms));
        await restored(target);
      });

      await t.step("another thread calling the same functions is not in the tree", async () => {
        const [o] = await trace(["shop.Calculator.calculate"], "calculate_busy");
        const compute = child(o.call_tree, "shop.Calculator._compute")!;
        assertEquals(compute.children.map((n) => [n.function, n.count]), [["shop.square", 3]]);
        await restored(target);
      });

      await t.step("the target's own tracer and profiler keep working", async () => {
        const monitoring = Number(py.version.split(".")[1]) >= 12;
        const traced = new StreamingCli(["trace", "shop.Calculator.calculate"], env);
        await traced.waitFor((l) => l.event === "trace_started");
        const [, tracer] = await run("calculate_traced") as unknown as [
          string,
          Record<string, unknown>,
        ];
        assertEquals(tracer, { tracer_kept: true, tracer_saw_square: 3 });
        const [, profiler] = await run("calculate_profiled") as unknown as [
          string,
          Record<string, unknown>,
        ];
        assertEquals(profiler.profiler_kept, true);
        assert(Number(profiler.profiler_saw_square) >= 1, JSON.stringify(profiler));
        await traced.waitFor(() => traced.observations().length >= (monitoring ? 2 : 1));
        traced.kill("SIGINT");
        await traced.done;
        const end = traced.lines.find((l) => l.event === "trace_stopped") as {
          data: Record<string, number>;
        };
        // Before 3.12 cProfile is a profile function: that call is left alone, and counted.
        assertEquals(end.data.busy_skipped, monitoring ? 0 : 1, JSON.stringify(end.data));
        const first = traced.observations()[0] as Tree;
        assertEquals(child(first.call_tree, "shop.Calculator._compute")!.children[0].count, 3);
        await restored(target);
      });

      await t.step("--condition: on the arguments before tracing, on cost after", async () => {
        const [slow] = await trace(
          ["shop.Calculator.calculate", "--condition", "cost > 20"],
          "calculate",
        );
        assert(slow.duration_ms > 20);
        const [three] = await trace([
          "shop.Calculator.calculate",
          "--condition",
          "len(values) == 3",
        ], "calculate");
        assertEquals(three.args, [[1, 2, 3]]);
        const none = new StreamingCli(["trace", "shop.risky", "--condition", "cost > 1000"], env);
        await none.waitFor((l) => l.event === "trace_started");
        await run("risky", 3);
        none.kill("SIGINT");
        await none.done;
        const end = none.lines.find((l) => l.event === "trace_stopped") as {
          data: Record<string, number>;
        };
        assertEquals([none.observations().length, end.data.calls], [0, 3]);
        const bad = await cli(
          ["trace", "shop.risky", "--condition", "__import__('os')", "--json"],
          env,
        );
        assertEquals([bad.code, bad.lines[0].code], [1, "BAD_CONDITION"]);
        await restored(target);
      });

      await t.step("a function that is not there: one clear error", async () => {
        const r = await cli(["trace", "shop.nope", "--json"], env);
        assertEquals(r.code, 1);
        assertEquals(r.lines[0].type, "error");
        assert(
          /shop\.nope/.test(String(r.lines[0].error ?? r.lines[0].message)),
          JSON.stringify(r.lines),
        );
        const expand = await cli(["trace", "shop.fib", "--expand", "shop.nope", "--json"], env);
        assertEquals([expand.code, expand.lines[0].code], [1, "NOT_FOUND"]);
        assert(/^--expand: .*shop\.nope/.test(String(expand.lines[0].error)), expand.stdout);
      });

      assertEquals((await cli(["detach", "--json"], env)).code, 0);
      assertEquals(target.errText, "");
    } finally {
      await target.stop();
    }
  });
}
