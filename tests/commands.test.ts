// ps against real processes (demo: tests/demo.test.ts).
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, pythons, Target } from "./helpers/env.ts";

const py = pythons().find((p) => p.version === "3.10") ?? pythons()[0];

interface Listed {
  pid: number;
  version: string;
  attached: boolean;
  command: string;
}

Deno.test("ps lists Python processes with version, command line and attached state", async () => {
  const t = await Target.start(py, "idle");
  const env = cliEnv();
  try {
    const find = async () => {
      const r = await cli(["ps", "--json"], env);
      assertEquals(r.code, 0, r.stderr);
      return (r.lines[0] as { data: { processes: Listed[] } }).data.processes.find((p) =>
        p.pid === t.pid
      );
    };
    const before = await find();
    assert(before, "target listed");
    assertEquals([before.version, before.attached], [py.version, false]);
    assert(before.command.includes("target.py idle"), before.command);
    assertEquals((await cli(["attach", String(t.pid), "--json"], env)).code, 0);
    assertEquals((await find())!.attached, true);
    assertEquals((await cli(["detach", "--json"], env)).code, 0);
    assertEquals((await find())!.attached, false);
  } finally {
    await t.stop();
  }
});
