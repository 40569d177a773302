// peeka source on every interpreter: functions, methods, classes, nested functions, lambdas and
// exec-defined code read as the process runs them; a module rewritten after import is flagged
// stale with its bytecode shown; a loader's get_source and a lazy linecache entry are never called.
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, pythons, REPO, StreamingCli, Target } from "./helpers/env.ts";

const SCRIPT = `${REPO}/tests/targets/sources.py`;

type Shown = Record<string, unknown> & { lines: string[] };

for (const py of pythons()) {
  Deno.test(`${py.version}: source`, async (t) => {
    const target = await Target.start(py, "", { script: SCRIPT });
    const work = target.lines[0].split(" ")[1];
    const env = cliEnv();
    const pid = String(target.pid);
    /** The source lines and the summary of one pattern. */
    const source = async (pattern: string) => {
      const r = await cli(["source", pattern, "--pid", pid, "--json"], env);
      assertEquals(r.code, 0, r.stderr);
      const shown = r.lines.filter((l) => l.type === "source") as Shown[];
      const summary = r.lines.find((l) => l.type === "result")!.data as Record<string, unknown>;
      return { shown, summary, only: shown[0] };
    };
    const fromFile = (s: Shown, first: number, lines: string[]) =>
      assertEquals(
        [s.stale, s.source_from, s.first_line, s.lines],
        [false, "file", first, lines],
        JSON.stringify(s),
      );
    try {
      assertEquals((await cli(["attach", pid, "--json"], env)).code, 0);

      await t.step("functions, methods and classes, with their lines", async () => {
        const plain = (await source("srcmod.plain")).only;
        fromFile(plain, 4, [
          "def plain(a, b=2):",
          '    """Adds."""',
          "    total = a + b",
          "    return total",
        ]);
        assertEquals([plain.kind, plain.last_line], ["function", 7]);
        fromFile((await source("srcmod.decorated")).only, 24, [
          "@deco",
          "def decorated(n):",
          "    return n * 3",
        ]);
        const unit = (await source("srcmod.Shape.unit")).only;
        fromFile(unit, 37, ["    @staticmethod", "    def unit():", "        return 1"]);
        assertEquals(unit.kind, "method");
        const shape = (await source("srcmod.Shape")).only;
        assertEquals([shape.kind, shape.methods, shape.first_line, shape.last_line], [
          "class",
          3,
          29,
          42,
        ]);
        assertEquals(
          [shape.lines[0], shape.lines.at(-1), shape.stale],
          ["class Shape(object):", "        return 0", false],
        );
      });

      await t.step("nested functions and lambdas", async () => {
        const inner = ["    def inner(y):", "        return x + y"];
        fromFile((await source("srcmod.outer.inner")).only, 11, inner);
        fromFile((await source("srcmod.outer.<locals>.inner")).only, 11, inner);
        const lambda = (await source("srcmod.outer.<locals>.<lambda>")).only;
        fromFile(lambda, 13, ["    square = lambda v: v * v"]);
        assertEquals(lambda.kind, "lambda");
        fromFile((await source("srcmod.double")).only, 45, ["double = lambda n: n * 2"]);
      });

      await t.step("code defined from strings says where it came from", async () => {
        const made = (await source("srcmod.made")).only;
        assertEquals([made.file, made.stale, made.defined_from_string, made.lines], [
          "<generated made>",
          false,
          true,
          [],
        ]);
        assertEquals((made.origin as Record<string, unknown>).reached_from, "srcmod");
        const loaded = made.loaded as Record<string, string[]>;
        assert(
          loaded.disassembly.some((l) => /LOAD_FAST.*\(q\)/.test(l)),
          loaded.disassembly.join("\n"),
        );
        const fromString = (await source("srcmod.from_string")).only;
        assertEquals(fromString.file, "<string>");
        const origin = fromString.origin as Record<string, unknown>;
        assertEquals([origin.module, origin.module_file], ["srcmod", `${work}/srcmod.py`]);
      });

      await t.step("a watched function still reads as its own, not stale", async () => {
        const watch = new StreamingCli(["watch", "srcmod.plain", "--pid", pid], env);
        try {
          await watch.waitFor((l) => l.event === "watch_started");
          fromFile((await source("srcmod.plain")).only, 4, [
            "def plain(a, b=2):",
            '    """Adds."""',
            "    total = a + b",
            "    return total",
          ]);
        } finally {
          watch.kill("SIGINT");
          await watch.done;
        }
      });

      await t.step("a module rewritten after import is stale: its bytecode is shown", async () => {
        Deno.writeTextFileSync(
          `${work}/stalemod.py`,
          "# deployed\n\ndef compute(a):\n    return a + 100\n\n\ndef untouched(b):\n    return b * 2\n",
        );
        const { only: changed, summary } = await source("stalemod.compute");
        assertEquals([changed.stale, summary.stale], [true, 1]);
        assert(/differs/.test(String(changed.stale_reason)), String(changed.stale_reason));
        assertEquals(changed.now, {
          first_line: 3,
          last_line: 4,
          lines: ["def compute(a):", "    return a + 100"],
        });
        const loaded = changed.loaded as Record<string, unknown>;
        assertEquals([loaded.first_line, loaded.code_lines, loaded.varnames], [1, [1, 2], ["a"]]);
        assert((loaded.consts as string[]).includes("1"), JSON.stringify(loaded));
        assert(
          (loaded.disassembly as string[]).some((l) => /^\s*2\s/.test(l)),
          "line 2 in the disassembly",
        );
        const moved = (await source("stalemod.untouched")).only;
        assertEquals(moved.stale, true);
        assert(/line 7 in the file now, not 5/.test(String(moved.stale_reason)));
      });

      await t.step(
        "no target code runs: a loader and a lazy linecache entry untouched",
        async () => {
          const trapped = (await source("trapmod.trapped")).only;
          assertEquals([trapped.defined_from_string, trapped.source_from], [true, null]);
          let called = true;
          try {
            Deno.statSync(`${work}/get_source_called`);
          } catch {
            called = false;
          }
          assertEquals(called, false, "the module's loader was called");
        },
      );

      await t.step("refusals", async () => {
        const r = await cli(["source", "srcmod.nothing", "--pid", pid, "--json"], env);
        assertEquals([r.code, r.lines[0].code], [1, "NOT_FOUND"], r.stdout);
        const n = await cli(["source", "nevermod.f", "--pid", pid, "--json"], env);
        assertEquals([n.code, n.lines[0].code], [1, "NOT_LOADED"], n.stdout);
      });
    } finally {
      await target.stop();
      Deno.removeSync(work, { recursive: true });
    }
  });
}
