// inspect --referrers against a target that leaks on purpose (tests/targets/leaky.py), one target
// per interpreter: each leak's owner named, bounds that hold, none of the target's code run,
// nothing of ours left referenced, the target's results unchanged.
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, pythons, REPO, Target } from "./helpers/env.ts";
import type { Referrers as Found } from "../commands/inspect/command.ts";

const LEAKY = `${REPO}/tests/targets/leaky.py`;

interface Report {
  results: Record<string, unknown>;
  referrers: Record<string, string[]>;
  ids: Record<string, number>;
}

for (const py of pythons()) {
  Deno.test(`${py.version}: inspect --referrers names what keeps each leak alive`, async (t) => {
    const target = await Target.start(py, "", { script: LEAKY });
    const env = cliEnv();
    const pid = String(target.pid);
    const marker = `${Deno.makeTempDirSync()}/touched`;
    const referrers = async (args: string[]) => {
      const r = await cli(["inspect", "--referrers", ...args, "--pid", pid, "--json"], env);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      return r.lines[0].data as Record<string, unknown>;
    };
    const found = (data: Record<string, unknown>) => data.referrers as Found[];
    try {
      assertEquals((await cli(["attach", pid, "--json"], env)).code, 0);
      const before = await target.ask("report") as unknown as Report;
      await target.ask(`arm ${marker}`);

      await t.step(
        "a module global with its key, a class attribute, a closure (at once)",
        async () => {
          // three searches in parallel: each one's walk state is in the others' snapshots
          const [[one], [held], [kept]] = (await Promise.all([
            referrers(["leaky._cache['session-7'][1]"]),
            referrers(["leaky.Registry.items[0]"]),
            referrers(["leaky._listeners[0].__closure__[0].cell_contents[2]", "--limit", "1"]),
          ])).map(found);
          assertEquals(one.object, { type: "leaky.Order", id: before.ids.cache });
          assertEquals(one.chains.map((c) => c.text), [
            "leaky._cache['session-7'] → list[1] → leaky.Order",
          ]);
          assertEquals(one.chains[0].root, { kind: "module global", name: "leaky._cache" });
          assertEquals(held.object.id, before.ids.class);
          assertEquals(held.chains.map((c) => c.text), ["leaky.Registry.items[0] → leaky.Order"]);
          assertEquals(held.chains[0].root.kind, "class attribute");
          assertEquals(kept.object.id, before.ids.closure);
          assertEquals(
            kept.chains[0].text,
            "leaky._listeners[0] → <closure of make_listener.<locals>.on_event>.seen → list[2] → " +
              "leaky.Order",
          );
        },
      );

      await t.step("a thread's frame local, for a sample of a class's instances", async () => {
        const data = await referrers(["--type", "leaky.Job"]);
        assertEquals([data.class, data.count, data.sample], ["leaky.Job", 3, 3]);
        const texts = found(data).map((f) => f.chains[0].text).sort();
        assertEquals(
          texts,
          [0, 1, 2].map((i) => `thread "worker-1" frame work() local batch[${i}] → leaky.Job`),
        );
        assertEquals(found(data)[0].chains[0].root.kind, "thread frame");
      });

      await t.step(
        "a deep chain, a cycle, few objects, little time: bounded, and said",
        async () => {
          const [[shallow], [ring], [capped], [late]] = (await Promise.all([
            referrers(["--type", "leaky.Deep", "--depth", "5"]),
            referrers(["leaky._ring.next.next", "--limit", "1"]),
            referrers(["leaky._ring.next.next", "--depth", "64", "--max-objects", "10"]),
            referrers(["leaky._deep", "--budget", "0.001"]),
          ])).map(found);
          assertEquals([late.partial, late.stopped], [true, "time budget (0.001 s) reached"]);
          assertEquals([shallow.chains, shallow.partial, shallow.stopped], [
            [],
            true,
            "depth 5 reached",
          ]);
          assertEquals(
            ring.chains[0].text,
            "leaky._ring → leaky.RingNode.next → leaky.RingNode.next → leaky.RingNode",
          );
          assertEquals([capped.partial, capped.stopped], [true, "object cap (10) reached"]);
        },
      );

      await t.step(
        "objects whose __eq__/__hash__/__repr__ write a file: none is called",
        async () => {
          const data = await referrers([
            "--type",
            "leaky.Sneaky",
            "--sample",
            "13",
            "--limit",
            "1",
          ]);
          assertEquals(data.count, 13);
          const texts = found(data).flatMap((f) => f.chains.map((c) => c.text));
          assert(texts.includes("leaky._cache (a key) → leaky.Sneaky"), texts.join("\n"));
          assert(texts.includes("leaky.Registry.items[1] → leaky.Sneaky"), texts.join("\n"));
          assert(texts.includes('thread "worker-1" frame work() local batch[3] → leaky.Sneaky'));
          let touched = "";
          try {
            touched = Deno.readTextFileSync(marker);
          } catch { /* never written: as it should be */ }
          assertEquals(touched, "", "the target's own methods ran");
        },
      );

      await t.step("a refusal: not a class", async () => {
        const r = await cli(
          ["inspect", "--referrers", "--type", "leaky._cache", "--pid", pid, "--json"],
          env,
        );
        assertEquals([r.code, r.lines[0].code], [1, "BAD_ARGS"]);
      });

      await t.step(
        "nothing of ours is left referenced; the target's results are unchanged",
        async () => {
          const after = await target.ask("report") as unknown as Report;
          assertEquals(after.referrers, before.referrers);
          assertEquals(after.results, before.results);
          assertEquals(target.errText, "");
        },
      );
    } finally {
      await cli(["detach", "--pid", pid, "--json"], env);
      await target.stop();
      Deno.removeSync(marker.replace(/\/touched$/, ""), { recursive: true });
    }
  });
}
