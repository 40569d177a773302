// The heap commands leave peeka's own objects out (agent/lib/heap.py Ours): after tt recorded
// calls and a watch ran, `inspect --instances builtins.dict`, `inspect --referrers --type
// builtins.dict` and `memory --growth` on an idle target show nothing of the agent's. One target
// per interpreter (tests/targets/tt_target.py).
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, pythons, REPO, StreamingCli, Target } from "./helpers/env.ts";

const TARGET = `${REPO}/tests/targets/tt_target.py`;
type Line = Record<string, unknown>;

/** Whether a shown dict is one of peeka's: a key starting `__peeka`, or a namespace named so. */
function peekaDict(value: unknown): boolean {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  return Object.entries(value as Line).some(([k, v]) =>
    k.startsWith("__peeka") || (k === "__name__" && String(v).startsWith("__peeka"))
  );
}

/** A streaming command that ends after `trigger` made the target call what it watches. */
async function streamed(
  env: Record<string, string>,
  args: string[],
  trigger: () => Promise<unknown>,
) {
  const c = new StreamingCli(args, env);
  await c.waitFor((l) => String(l.event ?? "").endsWith("_started") || l.type === "error");
  try {
    await trigger();
  } finally {
    const code = await Promise.race([c.done, new Promise<number>((r) => setTimeout(r, 20000, -1))]);
    if (code === -1) c.kill("SIGKILL");
  }
  assertEquals(await c.done, 0, c.stderr + JSON.stringify(c.lines).slice(-600));
}

for (const py of pythons()) {
  Deno.test(`${py.version}: heap walks leave peeka's own objects out`, async (t) => {
    const target = await Target.start(py, "", { script: TARGET });
    const env = cliEnv();
    const pid = String(target.pid);
    const data = async (args: string[]) => {
      const r = await cli([...args, "--pid", pid, "--json"], env);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      return r.lines[0].data as Line;
    };
    /** The first 1000 live instances of a class, in the order the collector lists them. */
    const instances = (cls: string) =>
      data(["inspect", cls, "--instances", "--limit", "1000", "-x", "1"]);
    try {
      assertEquals((await cli(["attach", pid, "--json"], env)).code, 0);
      await streamed(
        env,
        ["tt", "ttmod.Till.price", "-n", "50", "--pid", pid],
        () => target.ask("price 50"),
      );
      await streamed(
        env,
        ["watch", "ttmod.Till.price", "-n", "3", "--pid", pid],
        () => target.ask("price 3"),
      );
      // the list fill() got, which the target changed after the call: then held by tt only
      await streamed(
        env,
        ["tt", "ttmod.Till.fill", "--keep-objects", "-n", "1", "--pid", pid],
        () => target.ask("fill"),
      );

      await t.step("inspect --instances builtins.dict: none of peeka's dicts", async () => {
        const d = await instances("builtins.dict");
        const shown = (d.instances as Line[]).filter((i) => peekaDict(i.value));
        assertEquals(shown.map((i) => String(i.repr).slice(0, 120)), []);
        assert(Number(d.peeka_objects_left_out) > 0, JSON.stringify(d).slice(0, 400));
        assertEquals(d.peeka_cap_reached, false);
      });

      await t.step(
        "what peeka holds of the target's (tt --keep-objects) is still shown",
        async () => {
          const d = await instances("builtins.list");
          const kept = (d.instances as Line[]).filter((i) =>
            Array.isArray(i.value) && i.value[0] === "a" && i.value.at(-1) === "added after"
          );
          assertEquals(kept.length, 1, `count ${d.count}`);
        },
      );

      await t.step(
        "inspect --referrers --type builtins.dict: no peeka dict, no peeka owner",
        async () => {
          const d = await data([
            "inspect",
            "--referrers",
            "--type",
            "builtins.dict",
            "--sample",
            "20",
          ]);
          const text = JSON.stringify(d.referrers);
          assert(!text.includes("__peeka"), text.slice(0, 2000));
        },
      );

      await t.step(
        "memory --growth 1s on an idle target: nothing grew by 100 objects",
        async () => {
          // --trace first: the window then has peeka import tracemalloc (and what it imports)
          for (const trace of [["--trace"], []]) {
            const g = await data(["memory", "--growth", "1s", ...trace, "--limit", "10"]);
            const big = (g.grew as Line[]).filter((r) => Number(r.count_diff) >= 100);
            assertEquals(big, [], trace.join());
            assert(Number(g.peeka_objects_left_out) > 0, JSON.stringify(g).slice(0, 400));
            assertEquals(g.peeka_cap_reached, false);
          }
        },
      );
    } finally {
      await cli(["detach", "--pid", pid, "--json"], env);
      await target.stop();
    }
  });
}
