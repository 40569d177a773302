// watch, stack, monitor and reset against a real target on every interpreter.
// One target per interpreter is shared by the steps (it is restored after each).
import { assert, assertEquals } from "./helpers/assert.ts";
import {
  cli,
  cliEnv,
  DENO,
  pythons,
  REPO,
  sleep,
  StreamingCli,
  Target,
  waitUntil,
} from "./helpers/env.ts";
import { APP, observe, restored } from "./helpers/observe.ts";

for (const py of pythons()) {
  Deno.test(`${py.version}: watch, stack, monitor and reset on a real target`, async (t) => {
    const target = await Target.start(py, "", { script: APP });
    const env = cliEnv();
    const run = (scenario: string, n: number) => target.ask(`run ${scenario} ${n}`);
    try {
      assertEquals((await cli(["attach", String(target.pid), "--json"], env)).code, 0);

      await t.step("module function: the seed's observation fields", async () => {
        const { code, obs } = await observe(
          env,
          ["watch", "shop.add", "-n", "3"],
          () => run("add", 5),
        );
        assertEquals(code, 0);
        assertEquals(obs.map((o) => [o.args, o.result, o.count, o.success]), [
          [[0, 1], 1, 1, true],
          [[1, 2], 3, 2, true],
          [[2, 3], 5, 3, true],
        ]);
        const o = obs[0];
        assertEquals([
          o.func_name,
          o.location,
          o.thread.name,
          typeof o.duration_ms,
          typeof o.timestamp,
          o.watch_id !== undefined,
        ], ["shop.add", "AtExit", "MainThread", "number", "number", true]);
        await restored(target);
      });

      await t.step("the rate limit drops calls, and every drop is counted", async () => {
        for (const extra of [[], ["--condition", "x >= 0"]]) {
          const w = new StreamingCli(["watch", "shop.add", "--rate", "20", ...extra], env);
          await w.waitFor((l) => l.event === "watch_started" || l.type === "error");
          const t0 = performance.now();
          await run("add", 3000);
          await run("add", 3000); // after a pause: skipped calls are counted too
          const seconds = (performance.now() - t0) / 1000;
          w.kill("SIGINT");
          await w.done;
          const end = w.lines.find((l) => l.event === "watch_stopped") as {
            data: Record<string, number>;
          };
          const { calls, observations, rate_dropped } = end.data;
          assertEquals(calls, 6000, JSON.stringify(end.data));
          assertEquals(observations + rate_dropped, calls, JSON.stringify(end.data));
          // A bucket of 20 that refills 20/s: the upper bound follows the time the calls took.
          const most = 20 + Math.ceil(20 * (seconds + 0.5));
          assert(observations >= 20 && observations <= most, JSON.stringify({ most, ...end.data }));
          assertEquals(w.observations().length, observations);
        }
        await restored(target);
      });

      await t.step(
        "every way of reaching the function is seen: alias, registry, other threads",
        async () => {
          const { obs } = await observe(
            env,
            ["watch", "shop.add", "-n", "4", "--rate", "0"],
            async () => {
              await run("alias", 2);
              await run("registry", 2);
            },
          );
          assertEquals(obs.map((o) => o.args), [[0, 1], [1, 1], [0, 2], [1, 2]]);
          const threads = await observe(
            env,
            ["watch", "shop.add", "-n", "200", "--rate", "0"],
            () => run("threads", 1),
          );
          assertEquals(threads.obs.length, 200);
          assertEquals(new Set(threads.obs.map((o) => o.thread.name)).size, 4);
          const bound = await observe(
            env,
            ["watch", "shop.Calc.scale", "-n", "2"],
            () => run("bound", 2),
          );
          assertEquals(
            bound.obs.map((o) => o.result),
            [0, 2],
          );
          await restored(target);
        },
      );

      await t.step(
        "-s only successes, -e only exceptions (with type, message, traceback)",
        async () => {
          const e = await observe(
            env,
            ["watch", "shop.divide", "-e", "-n", "2"],
            () => run("divide", 6),
          );
          assertEquals(e.obs.map((o) => [o.args[0], o.success, o.exception?.type]), [[
            0,
            false,
            "ZeroDivisionError",
          ], [3, false, "ZeroDivisionError"]]);
          assert(/division by zero/.test(e.obs[0].exception!.message));
          const s = await observe(
            env,
            ["watch", "shop.divide", "-s", "-n", "2"],
            () => run("divide", 6),
          );
          assertEquals(s.obs.map((o) => [o.args, o.result]), [[[1, 1], 1], [[2, 2], 1]]);
          await restored(target);
        },
      );

      await t.step(
        "-b shows the arguments at entry, before the function changes them",
        async () => {
          const b = await observe(
            env,
            ["watch", "shop.mutate", "-b", "-n", "1"],
            () => run("mutate", 1),
          );
          assertEquals([b.obs[0].location, b.obs[0].args], ["AtEnter", [[0]]]);
          const after = await observe(
            env,
            ["watch", "shop.checkout", "-n", "1", "-x", "2"],
            () => run("checkout", 1),
          );
          const order = after.obs[0].args[0] as { __class__: string; __attrs__: { total: number } };
          assertEquals([order.__class__, after.obs[0].kwargs, after.obs[0].result], ["shop.Order", {
            express: true,
          }, 105]);
        },
      );

      await t.step("the seed's condition examples", async () => {
        const cases: [string, string, string, number, unknown[]][] = [
          ["shop.add", "params[0] > 2", "add", 2, [[3, 4], [4, 5]]],
          ["shop.checkout", "len(params) > 1", "checkout", 1, [[{
            __class__: "shop.Order",
            __attrs__: { total: 100 },
          }, null]]],
          ["shop.checkout", "kwargs.get('express') == True", "checkout", 1, [[{
            __class__: "shop.Order",
            __attrs__: { total: 100 },
          }, null]]],
          ["shop.add", "cost >= 0 and x + y > 6", "add", 1, [[3, 4]]],
          ["shop.greet", "str(name).startswith('n1')", "greet", 1, [["n1"]]],
          ["shop.checkout", "order.total > 101", "checkout", 1, [[{
            __class__: "shop.Order",
            __attrs__: { total: 102 },
          }, null]]],
          ["shop.add", "result == 7", "add", 1, [[3, 4]]],
          [
            "shop.divide",
            "exception is not None and type_name(exception) == 'ZeroDivisionError'",
            "divide",
            1,
            [[0, 0]],
          ],
        ];
        for (const [pattern, condition, scenario, n, args] of cases) {
          const w = await observe(env, [
            "watch",
            pattern,
            "-f",
            "-n",
            String(n),
            "--condition",
            condition,
            "-x",
            "2",
          ], () => run(scenario, 6));
          assertEquals(w.obs.map((o) => o.args), args, condition);
        }
      });

      await t.step("hostile conditions are refused when the watch starts", async () => {
        for (
          const bad of [
            "__import__('os').system('id')",
            "().__class__.__bases__[0].__subclasses__()",
            "open('/etc/passwd').read()",
            "eval('1')",
            "params[0].clear()",
            "kwargs.pop('x')",
            "9**9**9",
            "'a'*10**9",
            "x.__dict__",
            "[y for y in range(10**9)]",
            "lambda: 1",
            "(".repeat(200) + "1" + ")".repeat(200),
          ]
        ) {
          const r = await cli(["watch", "shop.add", "--condition", bad, "--json"], env);
          const err = r.lines.find((l) => l.type === "error") as
            | { code: string; error: string }
            | undefined;
          assertEquals([r.code, err?.code], [1, "BAD_CONDITION"], `${bad}: ${r.stdout}`);
        }
        await restored(target);
      });

      await t.step(
        "methods of every kind, async, generators, decorated functions, Class.*",
        async () => {
          const st = await observe(
            env,
            ["watch", "shop.Calc.twice", "-n", "2"],
            () => run("static", 1),
          );
          assertEquals(st.obs.map((o) => [o.args, o.result]), [[[0], 0], [[0], 0]]);
          const cm = await observe(
            env,
            ["watch", "shop.Calc.make", "-n", "2"],
            () => run("classm", 1),
          );
          assertEquals(
            cm.obs.map((o) => o.args),
            [[0], [0]],
          );
          const inner = await observe(
            env,
            ["watch", "shop.Calc.Inner.deep", "-n", "1"],
            () => run("inner", 1),
          );
          assertEquals(inner.obs[0].result, -1);
          const a = await observe(env, ["watch", "shop.fetch", "-n", "1"], () => run("async", 1));
          assert(a.obs[0].result === 0 && a.obs[0].duration_ms >= 9, JSON.stringify(a.obs[0]));
          const af = await observe(
            env,
            ["watch", "shop.fetch_fail", "-n", "1"],
            () => run("async", 1),
          );
          assertEquals(af.obs[0].exception?.type, "KeyError");
          const g = await observe(env, ["watch", "shop.countdown", "-n", "1"], () => run("gen", 1));
          assertEquals(g.obs[0].result, "done");
          const d = await observe(env, ["watch", "shop.greet", "-n", "1"], () => run("greet", 1));
          assertEquals([d.obs[0].func_name, d.obs[0].result], ["shop.greet", "hi n0"]);
          const all = await observe(
            env,
            ["watch", "shop.Calc.*", "-n", "3"],
            () => run("static", 1).then(() => run("inner", 1)).then(() => run("bound", 1)),
          );
          assertEquals(all.obs.length, 3);
          assertEquals((await target.ask("introspect")).descriptors, [
            "staticmethod",
            "classmethod",
          ]);
          await restored(target);
        },
      );

      await t.step("not loaded, missing, C function: clear errors, nothing imported", async () => {
        const expect = async (pattern: string, code: string) => {
          const r = await cli(["watch", pattern, "--json"], env);
          const err = r.lines.find((l) => l.type === "error") as { code: string } | undefined;
          assertEquals([r.code, err?.code], [1, code], pattern);
        };
        await expect("peeka_never_imported_mod.f", "NOT_LOADED");
        await expect("shop.no_such_function", "NOT_FOUND");
        await expect("builtins.len", "NOT_INSTRUMENTABLE");
        assertEquals((await target.ask("introspect")).never_imported, true);
      });

      await t.step("results are identical with and without an active watch", async () => {
        const plain = await run("mix", 40);
        const watches = [
          "shop.add",
          "shop.divide",
          "shop.checkout",
          "shop.Calc.*",
          "shop.greet",
          "shop.fib",
        ]
          .map((p) => new StreamingCli(["watch", p, "--rate", "0"], env));
        for (const w of watches) {
          const first = await w.waitFor((l) => l.type === "event" || l.type === "error");
          assertEquals(first.event, "watch_started", JSON.stringify(first));
        }
        const watched = await run("mix", 40);
        for (const w of watches) w.kill("SIGINT");
        for (const w of watches) assertEquals(await w.done, 130);
        assertEquals(watched, plain);
        for (const w of watches) {
          assert(w.observations().length > 0 && w.lines.some((l) => l.event === "watch_stopped"));
        }
        await restored(target);
      });

      await t.step(
        'JSON lines piped to jq select(.type == "observation") as in the seed',
        async () => {
          const cmd =
            `${DENO} run -A ${REPO}/mod.ts watch shop.add -n 2 | /usr/bin/jq -c 'select(.type == "observation") | .args'`;
          const child = new Deno.Command("/bin/sh", {
            args: ["-c", cmd],
            env,
            clearEnv: true,
            cwd: REPO,
            stdout: "piped",
          }).spawn();
          await waitUntil(
            async () => {
              const list = await cli(["reset", "--list", "--json"], env);
              return (list.lines[0] as { data: { total: number } }).data.total === 1;
            },
            10000,
            "the piped watch is armed",
          );
          await run("add", 2);
          const out = await child.output();
          assertEquals(new TextDecoder().decode(out.stdout).trim().split("\n"), ["[0,1]", "[1,2]"]);
        },
      );

      await t.step("two clients each see only their own watch", async () => {
        const a = new StreamingCli(["watch", "shop.add", "-n", "2"], env);
        const b = new StreamingCli(["watch", "shop.divide", "-n", "2", "-s"], env);
        await a.waitFor((l) => l.type === "event");
        await b.waitFor((l) => l.type === "event");
        await run("add", 2);
        await run("divide", 3);
        await Promise.all([a.done, b.done]);
        assertEquals(a.observations().map((o) => o.func_name), ["shop.add", "shop.add"]);
        assertEquals(b.observations().map((o) => o.func_name), ["shop.divide", "shop.divide"]);
      });

      await t.step("a client killed with SIGKILL mid-watch leaves no instrumentation", async () => {
        const w = new StreamingCli(["watch", "shop.add"], env);
        await w.waitFor((l) => l.type === "event");
        w.kill("SIGKILL");
        await w.done;
        await restored(target);
        const list = await cli(["reset", "--list", "--json"], env);
        assertEquals((list.lines[0] as { data: { total: number } }).data.total, 0);
      });

      await t.step("stack: the callers at each entry", async () => {
        const s = await observe(env, ["stack", "shop.add", "-n", "1"], () => run("add", 1));
        const frames = (s.obs[0] as unknown as { stack: { function: string }[] }).stack.map((f) =>
          f.function
        );
        assertEquals(frames.slice(0, 3), ["outcome", "scenario", "main"]);
      });

      await t.step("monitor: per-cycle calls, failures, latency", async () => {
        const m = new StreamingCli(["monitor", "shop.divide", "-c", "0.5", "-n", "2"], env);
        await m.waitFor((l) => l.type === "event");
        await run("divide", 9);
        assertEquals(await m.done, 0);
        const cycles = m.observations();
        assertEquals(cycles.length, 2);
        const first = cycles[0] as Record<string, number>;
        assertEquals([first.calls, first.success, first.fail], [9, 6, 3]);
        assert(
          first.fail_rate > 0.33 && first.fail_rate < 0.34 && first.p95_ms >= first.min_ms,
          JSON.stringify(first),
        );
        const filtered = new StreamingCli([
          "monitor",
          "shop.add",
          "-c",
          "0.5",
          "-n",
          "1",
          "--condition",
          "x > 2",
        ], env);
        await filtered.waitFor((l) => l.type === "event");
        await run("add", 6);
        assertEquals(await filtered.done, 0);
        assertEquals((filtered.observations()[0] as Record<string, number>).calls, 3);
        await restored(target);
      });

      await t.step("reset stops other clients' watches and lists nothing afterwards", async () => {
        const w = new StreamingCli(["watch", "shop.add"], env);
        await w.waitFor((l) => l.type === "event");
        const r = await cli(["reset", "shop.add", "--json"], env);
        assertEquals((r.lines[0] as { data: { count: number } }).data.count, 1);
        assertEquals(await w.done, 0);
        assert(w.lines.some((l) => l.event === "watch_stopped"));
        const many = ["shop.add", "shop.divide", "shop.Calc.*"].map((p) =>
          new StreamingCli(["watch", p], env)
        );
        const mon = new StreamingCli(["monitor", "shop.fib", "-c", "60"], env);
        for (const c of [...many, mon]) await c.waitFor((l) => l.type === "event");
        const all = await cli(["reset", "--all", "--json"], env);
        assertEquals((all.lines[0] as { data: { count: number } }).data.count, 4);
        for (const c of [...many, mon]) assertEquals(await c.done, 0);
        await restored(target);
      });

      assertEquals((await cli(["detach", "--json"], env)).code, 0);
      await sleep(100);
      assertEquals(target.errText, "");
    } finally {
      await target.stop();
    }
  });
}
