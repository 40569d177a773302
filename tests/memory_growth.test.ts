// memory --growth / --by-module / --gc / --malloc-trim against a target that leaks on purpose
// (tests/targets/growing.py: a module-level cache, a class attribute's list, closures kept by a
// registered callback, objects held by a thread's frame), one target per interpreter.
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, pythons, REPO, Target } from "./helpers/env.ts";

const RATES: Record<string, number> = { CacheEntry: 800, Record: 400, Payload: 200, Blob: 100 };
type Row = Record<string, number | string>;

const within2x = (got: number, truth: number) => got >= truth / 2 && got <= truth * 2;

/** What refers to a leaked object of each kind, less the target's own sampling of it (its
 * `samples` dict and its frames in growing.py). */
function outsideReferrers(refs: Record<string, string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [kind, kinds] of Object.entries(refs)) {
    out[kind] = kinds.filter((k) =>
      !(k.startsWith("frame ") && k.endsWith("growing.py")) &&
      k !== "dict CacheEntry,Payload,Record"
    ).map((k) => k.startsWith("dict k") ? "dict k…" : k).sort();
  }
  return out;
}

for (const py of pythons()) {
  Deno.test(`${py.version}: memory: what grows, by module, gc and malloc_trim`, async (t) => {
    const target = await Target.start(py, "", { script: `${REPO}/tests/targets/growing.py` });
    const env = cliEnv();
    const pid = String(target.pid);
    const data = async (args: string[]) => {
      const r = await cli(["memory", "--pid", pid, ...args, "--json"], env);
      assertEquals(r.code, 0, r.stderr);
      return r.lines[0].data as Record<string, unknown>;
    };
    try {
      assertEquals((await cli(["attach", pid, "--json"], env)).code, 0);
      await data(["--limit", "1"]); // the agent loads code (and hashlib, to check it) once
      const modulesBefore = await target.ask("modules") as unknown as string[];
      const declared = new Set<string>();

      await t.step(
        "--growth 2s --trace: the leaking types at their rates, and their sites",
        async () => {
          await target.ask("grow");
          const g = await data(["--growth", "2s", "--trace", "--limit", "60"]);
          await target.ask("stop");
          const grew = g.grew as Row[];
          const row = (type: string) => grew.find((r) => r.type === type);
          for (const [kind, rate] of Object.entries(RATES)) {
            const r = row(`__main__.${kind}`);
            assert(
              r,
              `${kind} not among the types that grew: ${JSON.stringify(grew.map((r) => r.type))}`,
            );
            assert(
              within2x(Number(r.count_per_s), rate),
              `${kind}: ${r.count_per_s}/s, truth ${rate}/s`,
            );
            assert(Number(r.bytes_diff) > 0 && Number(r.bytes_per_min) > 0, JSON.stringify(r));
          }
          for (const kind of ["function", "cell"]) { // the closures kept by the callback
            const r = row(kind);
            assert(
              r && Number(r.count_per_s) >= RATES.Payload / 2,
              `${kind}: ${JSON.stringify(r)}`,
            );
          }
          assert(Number(g.seconds) >= 1.9 && Number(g.seconds) < 4, String(g.seconds));
          assert(Number(g.gil_max_ms) > 0 && Number(g.gil_max_ms) <= Number(g.gil_ms));
          assert(Number(g.total_ms) >= Number(g.seconds) * 1000 - 1);
          assert(Number(g.gil_releases) >= 2, String(g.gil_releases));
          const trace = g.trace as Record<string, unknown>;
          assertEquals(trace.tracemalloc_after, "stopped again");
          const sites = (trace.growth as Row[]).map((r) => String(r.file));
          assert(sites.some((f) => f.endsWith("growing.py")), JSON.stringify(sites));
          assert(!sites.some((f) => f.includes("peeka")), JSON.stringify(sites));
          for (const m of trace.modules_imported as string[]) declared.add(m);
          assertEquals((await target.ask("report")).tracing, false, "tracemalloc put back (off)");
        },
      );

      const before = await target.ask("report");
      const referrersBefore = outsideReferrers(
        await target.ask("referrers") as unknown as Record<string, string[]>,
      );
      assertEquals(referrersBefore, {
        CacheEntry: ["dict k…"],
        Record: ["list"],
        Payload: ["cell"],
      });

      await t.step(
        "--by-module: the target's module, the leaking containers by owner",
        async () => {
          const m = await data(["--by-module", "--limit", "40"]);
          const main = (m.modules as Record<string, unknown>[]).find((r) =>
            r.module === "__main__"
          );
          const made = before.made as Record<string, number>; // Payloads: one per leaked closure
          const leaked = Number(before.cache) + Number(before.history) + Number(before.blobs) +
            made.Payload;
          assert(main && Number(main.count) >= leaked, JSON.stringify(main));
          assert((main.top_types as string[]).includes("CacheEntry"), JSON.stringify(main));
          const owners = (m.containers as Row[]).map((c) => c.referenced_from);
          for (
            const owner of ["__main__.CACHE", "__main__.Registry.history", "__main__.BUS.handlers"]
          ) {
            assert(owners.includes(owner), `${owner} not in ${JSON.stringify(owners)}`);
          }
          const cache = (m.containers as Row[]).find((c) =>
            c.referenced_from === "__main__.CACHE"
          )!;
          assertEquals([cache.type, cache.len], ["dict", before.cache]);
          assert(Number(m.gil_max_ms) <= Number(m.gil_ms));
        },
      );

      await t.step("--gc --malloc-trim --summary: RSS before and after each step", async () => {
        const r = await data(["--gc", "--malloc-trim", "--summary", "--limit", "3"]);
        const [gc, trim] = r.steps as Record<string, unknown>[];
        assertEquals([gc.step, (gc.collected as number[]).length, trim.step], [
          "gc",
          3,
          "malloc_trim",
        ]);
        for (const s of [gc, trim]) {
          assert(Number(s.rss_before) > 0 && Number(s.rss_after) > 0, JSON.stringify(s));
        }
        assertEquals(typeof trim.released, "boolean");
        assertEquals([r.rss_before, r.rss_after], [gc.rss_before, trim.rss_after]);
        for (const m of r.modules_imported as string[]) declared.add(m);
        assert(declared.has("ctypes") || modulesBefore.includes("ctypes"), [...declared].join());
        assertEquals((r.summary as Record<string, unknown>).action, "overview");
      });

      await t.step("a usage error: one line, exit 2, nothing sent", async () => {
        const r = await cli(["memory", "--pid", pid, "--by-module", "--gc", "--json"], env);
        assertEquals([r.code, r.lines[0]?.code], [2, "USAGE"], r.stdout);
      });

      await t.step("the target: results unchanged, nothing of ours left referenced", async () => {
        const after = await target.ask("report");
        assertEquals(after, before);
        const refs = await target.ask("referrers");
        assert(!JSON.stringify(refs).includes("peeka"), JSON.stringify(refs));
        assertEquals(
          outsideReferrers(refs as unknown as Record<string, string[]>),
          referrersBefore,
        );
        const modulesAfter = await target.ask("modules") as unknown as string[];
        const added = modulesAfter.filter((m) => !modulesBefore.includes(m) && !declared.has(m));
        assertEquals(added, [], "modules imported and not declared");
        assertEquals(target.errText, "");
      });
    } finally {
      await cli(["detach", "--pid", pid, "--json"], env);
      await target.stop();
    }
  });
}
