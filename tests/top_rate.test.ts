// top at a high rate against a real busy target (tests/targets/busy.py) on every interpreter:
// samples asked and taken are reported (the terminal's summary: commands/top/command_test.ts), at -i 1ms most are
// taken (a generous floor: the machine is shared; bench/top_rate.ts has the real numbers), and
// --format collapsed writes folded stacks that add up to the samples.
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, pythons, REPO, Target } from "./helpers/env.ts";

const SECONDS = 3, INTERVAL_MS = 1;
type Summary = Record<string, number>;

for (const py of pythons()) {
  Deno.test(`${py.version}: top -i 1ms: samples asked and taken, folded stacks`, async (t) => {
    const target = await Target.start(py, "1", { script: `${REPO}/tests/targets/busy.py` });
    const env = cliEnv();
    const dir = Deno.makeTempDirSync();
    try {
      assertEquals((await cli(["attach", String(target.pid), "--json"], env)).code, 0);

      await t.step("most samples taken; the folded stacks add up to them", async () => {
        const file = `${dir}/out.folded`;
        const r = await cli([
          ...["top", "--pid", String(target.pid), "-i", `${INTERVAL_MS}ms`, "-d", `${SECONDS}`],
          ...["--flamegraph", file, "--format", "collapsed", "--json"],
        ], env);
        assertEquals(r.code, 0, r.stderr);
        const end = r.lines.find((l) => l.event === "top_stopped")?.data as Summary;
        assertEquals(end.sampler, "remote", JSON.stringify(end));
        const ticks = SECONDS * 1000 / INTERVAL_MS;
        // Every deadline that passed is asked for (the loop may end a tick early).
        assert(end.samples_asked >= ticks - 2 && end.samples_asked <= ticks, JSON.stringify(end));
        assertEquals(end.samples_taken, end.samples);
        // The main thread waits in accept() throughout: left out of (nearly) every sample.
        assert(end.idle_skipped >= 0.9 * end.samples_taken, JSON.stringify(end));
        assert(end.samples_taken >= 0.7 * end.samples_asked, JSON.stringify(end));
        const final = r.lines.find((l) => l.final === true) as Record<string, number>;
        assertEquals([final.samples_asked, final.samples_taken], [
          end.samples_asked,
          end.samples_taken,
        ]);

        const lines = Deno.readTextFileSync(file).split("\n").filter((l) => l !== "");
        const folded = lines.map((l) => /^(.+) (\d+)$/.exec(l));
        assert(folded.every((m) => m !== null), lines.slice(0, 3).join("\n"));
        const sum = folded.reduce((a, m) => a + Number(m![2]), 0);
        assertEquals(sum, end.thread_samples);
        const spinning = folded.filter((m) => /;__main__\.spin_leaf \(/.test(m![1]));
        assert(spinning.length > 0, lines.slice(0, 3).join("\n"));
        // Root first: the thread, then the outermost function; the leaf last.
        assert(
          spinning.every((m) =>
            /^spin-0;.*;__main__\.spin (.*)?;__main__\.spin_leaf \([^;]*$/.test(m![1])
          ),
          spinning[0]![1],
        );
      });

      await t.step("49 waiting threads left out, the busy one sampled", async () => {
        const many = await Target.start(py, "50:1", { script: `${REPO}/tests/targets/busy.py` });
        try {
          assertEquals((await cli(["attach", String(many.pid), "--json"], env)).code, 0);
          const pid = String(many.pid);
          const r = await cli(["top", "--pid", pid, "-i", "2ms", "-d", "2", "--json"], env);
          assertEquals(r.code, 0, r.stderr);
          const end = r.lines.find((l) => l.event === "top_stopped")?.data as Summary;
          // 49 idle workers and the main thread, each sample, walked or kept from before.
          assert(end.idle_skipped >= 0.9 * 50 * end.samples_taken, JSON.stringify(end));
          // Most samples read only the GIL's holder: the others had not run since (gil.ts).
          assert(end.samples_gil_holder_only > 0, JSON.stringify(end));
          const final = r.lines.find((l) => l.final === true) as {
            functions: { function: string }[];
          };
          const names = final.functions.map((f) => f.function);
          assert(names.includes("__main__.spin_leaf"), names.join());
          assert(!names.includes("__main__.idle_worker"), names.join());
          await cli(["detach", "--pid", pid, "--json"], env);
        } finally {
          await many.stop();
        }
      });

      await t.step("--format must be svg, speedscope or collapsed", async () => {
        const r = await cli(
          ["top", "--pid", String(target.pid), "--format", "toString", "--json"],
          env,
        );
        assertEquals([r.code, r.lines[0].code], [2, "USAGE"], JSON.stringify(r.lines));
        assert(/svg, speedscope or collapsed/.test(String(r.lines[0].error)), r.stderr);
      });
      await cli(["detach", "--json"], env);
    } finally {
      await target.stop();
      Deno.removeSync(dir, { recursive: true });
    }
  });
}
