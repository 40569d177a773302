// Condition bombs against a real target on every interpreter: each is refused when the watch
// starts, or fails on every call (counted) within the budget, while the target's heartbeat
// never stalls; strict mode runs none of the target's code; and the fuzz test of the
// evaluator (tests/agent/condition_fuzz.py). Also the numbers watch, stack, monitor and trace
// refuse as usage errors.
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, pythons, REPO, sleep, Target } from "./helpers/env.ts";
import { selfTest } from "./helpers/selftest.ts";
import { AgentClient } from "../core/protocol.ts";
import { callCommand } from "../core/call.ts";
import { sessionPaths } from "../core/session.ts";
import watch from "../commands/watch/command.ts";

const HEARTBEAT = `${REPO}/tests/targets/heartbeat.py`;
const FUNC = "__main__.work";

/** Refused when the watch starts (BAD_CONDITION). */
const REFUSED = [
  "[[[0]*100000]*100000]*100000 == [[[0]*100000]*100000]*100000",
  "str([[0]*100000]*100000) == 'x'",
  "9**9**9 > 0",
  "nosuch == 1", // not a parameter of work(): it would fail on every call
  "self.total > 0",
];
/** Accepted, but every evaluation stops at the budget with an error. */
const CUT_OFF = [
  "items == items",
  "str(items) == 'x'",
  "f'{items}{items}' == ''",
  "min(items) == 0",
  "(items,) in {(items,)}",
  "blob.split() == []",
  "blob + blob == blob",
  "blob.lower() == ''",
  "order.gen.gi_frame.f_globals['SECRET'] == 's3cret'",
  "str(raw, 'idna') == ''",
];
/** Of those, the ones cut off by the budget (the others are refused on reading). */
const COSTLY = CUT_OFF.slice(0, 8);
/** Strict mode: a property, __eq__, __repr__, __hash__, __bool__ of the target's class. */
const STRICT = [
  "order.doubled > 0",
  "order == 1",
  "str(order) != ''",
  "order in {1: 2}",
  "not order",
];

interface Report {
  calls: number;
  max_gap_ms: number;
  marks: number;
}

const rssKiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);

/** A watch started straight on the agent, on its own connection (no CLI process per watch). */
async function startWatch(pid: number, condition: string, strict: boolean) {
  const client = await AgentClient.connect(sessionPaths(pid).socket);
  const stop = new AbortController();
  const request = watch.request!({ depth: 2, times: -1, rate: 1000, condition, strict }, [FUNC]);
  const done = callCommand(client, watch, request, { signal: stop.signal }).then(
    (data) => ({ data, error: null as string | null }),
    (e: Error & { code?: string }) => ({ data: null, error: `${e.code ?? ""} ${e.message}` }),
  ).finally(() => client.close());
  return { condition, stop, done };
}

/** Watches with these conditions at once for `ms`; what each one ended with. */
async function watchAll(pid: number, conditions: string[], strict: boolean, ms = 500) {
  const watches = await Promise.all(conditions.map((c) => startWatch(pid, c, strict)));
  await sleep(ms); // the worker calls work() every 2 ms: a hundred evaluations each or more
  for (const w of watches) w.stop.abort();
  return await Promise.all(watches.map((w) => w.done));
}

for (const py of pythons()) {
  Deno.test(`${py.version}: condition bombs, strict mode and usage errors on a real target`, async (t) => {
    const target = await Target.start(py, "", { script: HEARTBEAT });
    const env = cliEnv();
    const pid = String(target.pid);
    try {
      assertEquals((await cli(["attach", pid, "--json"], env)).code, 0);

      await t.step(
        "bombs are refused at start or cut off; the heartbeat never stalls",
        async () => {
          const rssBefore = rssKiB(target.pid);
          await target.ask("reset");
          const before = (await target.ask("report")) as unknown as Report;
          // Waves within the agent's connection limit (16); refused ones return at once.
          const conditions = [...REFUSED, ...CUT_OFF, ...STRICT];
          const results = [
            ...(await watchAll(target.pid, REFUSED, false, 0)),
            ...(await watchAll(target.pid, CUT_OFF, false)),
            ...(await watchAll(target.pid, STRICT, true)),
          ];
          const after = (await target.ask("report")) as unknown as Report;
          const byCondition = new Map(conditions.map((c, i) => [c, results[i]]));
          for (const c of REFUSED) {
            const r = byCondition.get(c)!;
            assert(r.error?.includes("BAD_CONDITION"), `${c}: ${JSON.stringify(r)}`);
          }
          for (const c of [...CUT_OFF, ...STRICT]) {
            const r = byCondition.get(c)!;
            const d = (r.data ?? {}) as Record<string, number | string>;
            const calls = Number(d.calls), errors = Number(d.condition_errors);
            assert(
              r.error === null && calls > 0 && d.observations === 0,
              `${c}: ${JSON.stringify(r)}`,
            );
            if (COSTLY.includes(c)) {
              // Cut off by the budget a few times, then the watch stops by itself.
              assertEquals(d.reason, "condition_too_costly", `${c}: ${JSON.stringify(d)}`);
            } else {
              // Every call fails (a call counted as the watch stops may not be evaluated).
              assert(
                errors >= calls - 1 && errors > 0,
                `${c}: every call fails: ${JSON.stringify(d)}`,
              );
            }
          }
          // A 10 ms tick; 1 s is far beyond what a machine under load adds, and far below what an
          // unbounded condition holding the GIL takes (minutes).
          assert(after.max_gap_ms < 1000, `heartbeat stalled ${after.max_gap_ms} ms`);
          assert(after.calls > before.calls, "the target kept working");
          assertEquals(
            after.marks,
            before.marks,
            "strict mode ran the target's dunders or property",
          );
          // 50 MB: the budget allows a few MB at most; an unbounded str() grew 25 MB/s.
          const grown = rssKiB(target.pid) - rssBefore;
          assert(grown < 50 * 1024, `the target grew ${grown} KiB`);
        },
      );

      await t.step("nonsense numbers are usage errors (exit 2, USAGE)", async () => {
        const cases = [
          ["watch", FUNC, "-n", "-5"],
          ["watch", FUNC, "-n", "0"],
          ["watch", FUNC, "--rate", "-1"],
          ["stack", FUNC, "--depth", "0"],
          ["monitor", FUNC, "-c", "0"],
          ["monitor", FUNC, "-c", "-2"],
          ["trace", FUNC, "-d", "-1"],
          ["trace", FUNC, "--max-nodes", "1"],
        ];
        const runs = await Promise.all(cases.map((c) => cli([...c, "--pid", pid, "--json"], env)));
        runs.forEach((r, i) => {
          const err = r.lines.find((l) => l.type === "error") as { code?: string } | undefined;
          assert(r.code === 2 && err?.code === "USAGE", `${cases[i].join(" ")}: ${r.stdout}`);
        });
      });

      await t.step("the target still answers and detach succeeds", async () => {
        assert(((await target.ask("report")) as unknown as Report).calls > 0);
        assertEquals((await cli(["detach", "--pid", pid, "--json"], env)).code, 0);
        assertEquals(target.errText, "", "nothing on the target's stderr");
      });
    } finally {
      await target.stop();
    }
  });

  Deno.test(`${py.version}: condition evaluator fuzz (strict runs no target code)`, async () => {
    await selfTest(py.path, [`${REPO}/tests/agent/condition_fuzz.py`, "--seconds", "1.5"]);
  });
}
