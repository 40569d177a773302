// Third-party plugins through the bundled CLI run alone from an empty directory
// (as a compiled peeka would be): the example plugin against a real target, the
// listing, a clash with a built-in, and broken plugins that name their file; the count example,
// an instrumented command on the observe library, against a target whose calls the test makes.
import { assert, assertEquals } from "./helpers/assert.ts";
import { bundleAlone, cli, cliEnv, pythons, REPO, Target, waitUntil } from "./helpers/env.ts";
import { APP, restored } from "./helpers/observe.ts";

const py = pythons().find((p) => p.version === "3.12") ?? pythons()[0];

/** Copies the example plugin `name` into the plugin folder `dir`. */
function installExample(dir: string, name: string): void {
  Deno.mkdirSync(`${dir}/${name}`, { recursive: true });
  for (const f of ["command.ts", "snippet.py"]) {
    Deno.copyFileSync(`${REPO}/examples/plugins/${name}/${f}`, `${dir}/${name}/${f}`);
  }
}

/** A plugin folder with the example plugin and one plugin of every broken kind. */
function pluginDir(root: string): string {
  const dir = `${root}/plugins`;
  installExample(dir, "env");
  Deno.writeTextFileSync(
    `${dir}/syntax.ts`,
    'import { defineCommand } from "peeka";\nexport default defineCommand({ name: "syntax", summary: "x", snippet: "" ;\n',
  );
  Deno.writeTextFileSync(
    `${dir}/nameless.js`,
    'export default { summary: "no name", snippet: "" };\n',
  );
  Deno.writeTextFileSync(
    `${dir}/clash.js`,
    'export default { name: "watch", summary: "mine", snippet: "def run(ctx, args):\\n    return {}\\n" };\n',
  );
  Deno.mkdirSync(`${dir}/raises`);
  Deno.writeTextFileSync(
    `${dir}/raises/command.js`,
    'import { defineCommand } from "peeka";\nexport default defineCommand({ name: "raises", summary: "fails in the target" });\n',
  );
  Deno.writeTextFileSync(
    `${dir}/raises/snippet.py`,
    'def run(ctx, args):\n    raise ValueError("the plugin\'s own bug")\n',
  );
  // Anyone could replace this one (a folder writable by all): it must not run, least of all as root.
  Deno.mkdirSync(`${dir}/shared`);
  Deno.writeTextFileSync(
    `${dir}/shared/command.js`,
    'export default { name: "shared", summary: "x", snippet: "def run(ctx, args):\\n    return {}\\n" };\n',
  );
  Deno.chmodSync(`${dir}/shared`, 0o777);
  return dir;
}

Deno.test("plugins: the example, the listing, a clash and broken plugins, from the bundle alone", async () => {
  const work = Deno.makeTempDirSync({ prefix: "peeka-plugins-" });
  const empty = `${work}/empty`;
  await bundleAlone(work);
  const plugins = pluginDir(work);
  const t = await Target.start(py, "idle", { env: { API_TOKEN: "s3cret", APP_MODE: "blue" } });
  try {
    const env = cliEnv({ DENO_DIR: `${work}/deno-dir`, XDG_CONFIG_HOME: `${work}/config` });
    const run = (args: string[]) =>
      cli([...args, "--plugin-dir", plugins], env, `${empty}/peeka.js`, empty);

    const listed = await run(["plugins", "--json"]);
    assertEquals(listed.code, 0, listed.stderr);
    const data = listed.lines[0].data as {
      commands: { name: string; origin: string; version: string }[];
      problems: { path: string; error: string }[];
    };
    const envPlugin = data.commands.find((c) => c.name === "env")!;
    assertEquals([envPlugin.origin, envPlugin.version], [`${plugins}/env/command.ts`, "1.0.0"]);
    assertEquals(data.commands.find((c) => c.name === "watch")!.origin, "built-in");
    const problems = Object.fromEntries(
      data.problems.map((p) => [p.path.split("/").pop(), p.error]),
    );
    assert(/syntax error/i.test(problems["syntax.ts"]), problems["syntax.ts"]);
    assert(/'name' must be/.test(problems["nameless.js"]), problems["nameless.js"]);
    assert(/'watch' is a built-in command/.test(problems["clash.js"]), problems["clash.js"]);
    assert(
      /changed by other users \(mode 777\)/.test(problems["command.js"]),
      problems["command.js"],
    );
    assert(
      !data.commands.some((c) => c.name === "shared"),
      "a plugin others can change is not run",
    );
    assertEquals(data.problems.length, 4, JSON.stringify(data.problems));

    assertEquals((await run(["attach", String(t.pid), "--json"])).code, 0);
    const shown = await run(["env", "AP*", "--json"]);
    assertEquals(shown.code, 0, shown.stderr);
    assertEquals((shown.lines[0].data as { variables: unknown[] }).variables, [
      { name: "API_TOKEN", value: "****", masked: true },
      { name: "APP_MODE", value: "blue", masked: false },
    ]);
    // Every broken plugin is named once on stderr; the other commands keep working.
    const stderr = shown.stderr.trim().split("\n");
    assertEquals(stderr.length, 4, shown.stderr);
    assert(stderr.every((l) => l.startsWith(`peeka: plugin ${plugins}/`)), shown.stderr);
    const threads = await run(["thread", "--json"]);
    assertEquals(threads.code, 0);

    const failing = await run(["raises", "--json"]);
    assertEquals(failing.code, 1);
    const err = failing.lines[0];
    assertEquals([err.type, err.plugin], ["error", `${plugins}/raises/command.js`]);
    assert(
      /plugin .*raises\/command\.js: .*ValueError: the plugin's own bug/.test(String(err.error)),
      String(err.error),
    );

    const clash = await run(["watch", "--help"]);
    assert(
      /Stream every call of module.func/.test(clash.stdout),
      "the built-in watch is untouched",
    );
    assertEquals((await run(["detach", "--json"])).code, 0);
    assertEquals([...Deno.readDirSync(empty)].map((e) => e.name), ["peeka.js"]);
  } finally {
    await t.stop();
    Deno.removeSync(work, { recursive: true });
  }
});

type CountLine = Record<string, unknown> & { calls: number; data: Record<string, unknown> };

Deno.test("plugins: count, an instrumented plugin, from the bundle alone", async () => {
  const work = Deno.makeTempDirSync({ prefix: "peeka-plugins-" });
  const empty = `${work}/empty`;
  await bundleAlone(work);
  const plugins = `${work}/plugins`;
  installExample(plugins, "count");
  const t = await Target.start(py, "", { script: APP });
  try {
    const env = cliEnv({ DENO_DIR: `${work}/deno-dir`, XDG_CONFIG_HOME: `${work}/config` });
    const run = async (args: string[]) => {
      const r = await cli([...args, "--plugin-dir", plugins], env, `${empty}/peeka.js`, empty);
      return { ...r, lines: r.lines as CountLine[] };
    };
    const intervals = (lines: CountLine[]) => lines.filter((l) => l.type === "observation");
    const total = (lines: CountLine[]) => intervals(lines).reduce((sum, o) => sum + o.calls, 0);
    const stopped = (lines: CountLine[]) => lines.find((l) => l.event === "count_stopped")!.data;
    /** Starts a count and waits until it is installed (listed by reset); `end` is its result. */
    const counting = async (args: string[]) => {
      const end = run(["count", "shop.add", ...args, "--json"]);
      await waitUntil(
        async () => (await run(["reset", "--list", "--json"])).lines[0].data.total === 1,
        10000,
        "the count is installed",
      );
      return { end };
    };
    assertEquals((await run(["attach", String(t.pid), "--json"])).code, 0);

    // reset ends it, and its intervals add up to the calls made: the stop sends the last one.
    const all = await counting(["-i", "200ms"]);
    await t.ask("run add 100");
    await t.ask("run add 50");
    assertEquals((await run(["reset", "shop.add", "--json"])).code, 0);
    const c = await all.end;
    assertEquals(c.code, 0, c.stderr);
    const counts = intervals(c.lines).map((o) => o.calls);
    assert(counts.some((n) => n > 0), JSON.stringify(counts));
    assertEquals(total(c.lines), 150);
    assertEquals([stopped(c.lines).calls, stopped(c.lines).reason], [150, "stopped"]);

    // --condition counts only the calls where it is true (x is 90..99 in 10 of them).
    const some = await counting(["--condition", "x >= 90"]);
    await t.ask("run add 100");
    await run(["reset", "shop.add", "--json"]);
    assertEquals(total((await some.end).lines), 10);

    // -n ends it by itself after n intervals.
    const limited = await run(["count", "shop.add", "-i", "100ms", "-n", "3", "--json"]);
    assertEquals(limited.code, 0, limited.stderr);
    assertEquals(intervals(limited.lines).length, 3);
    assertEquals([stopped(limited.lines).intervals, stopped(limited.lines).reason], [3, "times"]);

    assertEquals((await run(["detach", "--json"])).code, 0);
    await restored(t);
    assertEquals(t.errText, "");
  } finally {
    await t.stop();
    Deno.removeSync(work, { recursive: true });
  }
});
