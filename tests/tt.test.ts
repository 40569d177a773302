// tt (time tunnel) against a real target on every interpreter: record, then list, show,
// search, replay and clear from later CLIs; the ring's bounds; reset and detach.
// One target per interpreter is shared by the steps.
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, pythons, REPO, StreamingCli, Target } from "./helpers/env.ts";
import type { Store } from "../commands/tt/render.ts";

const TARGET = `${REPO}/tests/targets/tt_target.py`;
type Line = Record<string, unknown>;
type Rec = Line & { index: number; args: unknown[]; result: unknown; func_name: string };

const rssKiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);

/** Records while `trigger` runs; returns the CLI's lines once it ended (by -n or `end`). */
async function recording(
  env: Record<string, string>,
  args: string[],
  trigger: () => Promise<unknown>,
  end?: () => Promise<unknown>,
): Promise<{ code: number; records: Rec[]; stopped: Store & Line; lines: Line[] }> {
  const c = new StreamingCli(["tt", ...args], env);
  await c.waitFor((l) => l.event === "tt_started" || l.type === "error");
  try {
    await trigger();
    await end?.();
  } finally {
    const code = await Promise.race([c.done, new Promise<number>((r) => setTimeout(r, 20000, -1))]);
    if (code === -1) c.kill("SIGKILL");
  }
  const code = await c.done;
  const stopped = c.lines.find((l) => l.event === "tt_stopped") as { data: Store & Line };
  assert(stopped, `no tt_stopped: ${JSON.stringify(c.lines).slice(-800)} ${c.stderr}`);
  const records = c.lines.filter((l) => l.type === "tt_record") as Rec[];
  return { code, records, stopped: stopped.data, lines: c.lines };
}

/** One tt answer (list, show, search, replay, clear) from a fresh CLI. */
async function tt(env: Record<string, string>, pid: number, ...args: string[]) {
  const r = await cli(["tt", ...args, "--pid", String(pid), "--json"], env);
  const line = r.lines.find((l) => String(l.type).startsWith("tt_") || l.type === "error") ?? {};
  return { code: r.code, line: line as Line, stderr: r.stderr };
}

for (const py of pythons()) {
  Deno.test(`${py.version}: tt records calls, later CLIs look at them, bounded, reset`, async (t) => {
    const target = await Target.start(py, "", { script: TARGET });
    const env = cliEnv();
    const pid = target.pid;
    try {
      assertEquals((await cli(["attach", String(pid), "--json"], env)).code, 0);
      let recorded: Rec[] = [];

      await t.step("record: index, time, thread, args at entry, result or exception", async () => {
        const r = await recording(env, ["ttmod.Till.*", "--keep-objects", "-n", "7"], async () => {
          await target.ask("price 3");
          await target.ask("fill");
          await target.ask("fail 2");
          await target.ask("grow");
        });
        assertEquals(r.code, 0);
        recorded = r.records;
        assertEquals(recorded.map((x) => [x.func_name.split(".").pop(), x.result, x.success]), [
          ["price", -1, true],
          ["price", 1, true],
          ["price", 3, true],
          ["fill", 2, true],
          ["fail", null, false],
          ["fail", null, false],
          ["grow", 1, true],
        ]);
        const indexes = recorded.map((x) => x.index);
        assertEquals(indexes, indexes.map((_, i) => indexes[0] + i));
        const [first] = recorded;
        assertEquals([first.args, first.kwargs, first.objects_kept], [
          [{ cost: 0 }, 2],
          { discount: 1 },
          true,
        ]);
        assert(typeof first.timestamp === "number" && Number(first.duration_ms) >= 0);
        assert((first.thread as { id: number }).id > 0);
        assertEquals((recorded[4].exception as { type: string }).type, "ValueError");
        // fill appended to its list, and its caller after it: the record has it as it came
        assertEquals(recorded[3].args, [["a"]]);
        assertEquals(r.stopped.records, 7);
      });

      await t.step("records survive the CLI: list, show (-x), search from later CLIs", async () => {
        const list = await tt(env, pid, "--list");
        assertEquals(list.code, 0, list.stderr);
        const held = list.line.records as Rec[];
        assertEquals(held.map((x) => [x.index, x.args]), recorded.map((x) => [x.index, x.args]));
        const store = list.line.store as Store;
        assertEquals([store.records, store.max_records], [7, 100]);
        assert(store.bytes > 0 && store.bytes <= store.max_bytes, JSON.stringify(store));

        const fill = recorded[3].index;
        const show = await tt(env, pid, "--show", String(fill), "-x", "3");
        const rec = show.line.record as Rec & { now: { args: unknown[] } };
        assertEquals(rec.args, [["a"]]);
        assertEquals(rec.now.args, [["a", "added inside", "added after"]]);
        const shallow = await tt(env, pid, "--show", String(fill), "-x", "1");
        assertEquals((shallow.line.record as Rec).args, ["['a']"]);

        const found = await tt(env, pid, "--search", "exception is not None or result == 3");
        assertEquals(
          (found.line.records as Rec[]).map((x) => x.index),
          [recorded[2], recorded[4], recorded[5]].map((x) => x.index),
        );
        const missing = await tt(env, pid, "--show", "999999");
        assertEquals([missing.code, missing.line.code], [1, "NOT_FOUND"]);
      });

      await t.step("replay: refused without the flag; with it, on the agent's thread", async () => {
        const grow = recorded[6].index;
        const refused = await tt(env, pid, "--replay", String(grow));
        assertEquals([refused.code, refused.line.code], [1, "CONFIRMATION_REQUIRED"]);
        assertEquals((await target.ask("till")).n, 1); // nothing ran
        const replay = await tt(env, pid, "--replay", String(grow), "--confirm-side-effects");
        assertEquals(replay.code, 0, replay.stderr);
        assertEquals([replay.line.success, replay.line.result], [true, 2]);
        assertEquals((replay.line.recorded as Line).result, 1);
        assert(String(replay.line.warning).includes("side effects"));
        assert(Number(replay.line.duration_ms) >= 0);
        assertEquals((await target.ask("till")).n, 2); // the side effect happened
      });

      await t.step(
        "clear drops every record and every reference to the target's objects",
        async () => {
          await target.ask("drop"); // the till is now held only by the records' kept objects
          assertEquals((await target.ask("till")).alive, true);
          const cleared = await tt(env, pid, "--clear");
          assertEquals(cleared.line.cleared, 7);
          assertEquals((await target.ask("till")).alive, false);
        },
      );

      await t.step("bounds: huge arguments stay within --max-bytes and --max-records", async () => {
        const before = rssKiB(pid);
        const kept = await recording(
          env,
          ["ttmod.ingest", "--keep-objects", "--max-bytes", "8m", "-n", "30", "--rate", "0"],
          () => target.ask("ingest 30 2"), // 30 calls, each with its own 2 MiB argument
        );
        const grown = rssKiB(pid) - before;
        const s = kept.stopped;
        assertEquals(kept.records.length, 30);
        assert(s.bytes <= 8 << 20 && s.records >= 1 && s.records < 30, JSON.stringify(s));
        assertEquals(s.records + s.evicted, 30, JSON.stringify(s));
        // the 60 MiB of arguments were not all kept alive: the budget and some allocator slack
        assert(grown < 8 * 1024 + 16 * 1024, `target grew ${grown} KiB: ${JSON.stringify(s)}`);

        const bounds = ["--max-records", "5", "--max-bytes", "64k", "-n", "20", "--rate", "0"];
        const onArguments = ["--condition", "blob is not None"]; // decided at entry
        const plain = await recording(
          env,
          ["ttmod.ingest", ...bounds, ...onArguments],
          () => target.ask("ingest 20 1"),
        );
        const p = plain.stopped;
        assertEquals([p.records, p.max_records, p.max_bytes], [5, 5, 64 << 10]);
        assert(p.bytes <= 64 << 10, JSON.stringify(p));
        assertEquals(plain.records[0].args, ["<bytes len=1048576>"]);
        const last = plain.records[plain.records.length - 1].index;
        const noObjects = await tt(env, pid, "--replay", String(last), "--confirm-side-effects");
        assertEquals(noObjects.line.code, "NOT_REPLAYABLE");
        const deeper = await tt(env, pid, "--show", String(last), "-x", "5");
        assert(/recorded to -x 2/.test(String((deeper.line.record as Line).note)), deeper.stderr);
      });

      await t.step("reset stops a recording and removes its records", async () => {
        const r = await recording(
          env,
          ["ttmod.Till.price", "--condition", "cost >= 0"], // decided at exit
          () => target.ask("price 2"),
          async () => {
            const reset = await cli(["reset", "ttmod.Till.price", "--pid", String(pid)], env);
            assertEquals(reset.code, 0, reset.stderr);
          },
        );
        assertEquals([r.code, r.records.length, r.stopped.reason], [0, 2, "stopped"]);
        const list = await tt(env, pid, "--list");
        assertEquals([list.line.records, list.line.store], [[], null]);
        const status = await cli(["reset", "--list", "--pid", String(pid), "--json"], env);
        const data = (status.lines.find((l) => l.type === "result") as { data: Line }).data;
        assertEquals([data.enhanced, data.instrumented], [[], []]);
      });

      await t.step("detach drops the records' references too", async () => {
        const r = await recording(
          env,
          ["ttmod.Till.grow", "--keep-objects", "-n", "1"],
          () => target.ask("grow"),
        );
        assertEquals(r.records.map((x) => x.objects_kept), [true]);
        await target.ask("drop");
        assertEquals((await target.ask("till")).alive, true);
        assertEquals((await cli(["detach", "--pid", String(pid), "--json"], env)).code, 0);
        assertEquals((await target.ask("till")).alive, false);
      });
      assertEquals(target.errText, "");
    } finally {
      await target.stop();
    }
  });
}
