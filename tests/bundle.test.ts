// The program carries everything it needs: the bundled CLI, copied alone
// into an empty directory, attaches, runs a command and detaches. Also
// checks the seed-compatible name peeka-cli (JSON lines by default).
import { assert, assertEquals } from "./helpers/assert.ts";
import {
  bundleAlone,
  cli,
  cliEnv,
  DENO,
  pythons,
  REPO,
  sessionDirOf,
  Target,
} from "./helpers/env.ts";

const py = pythons().find((p) => p.version === "3.11") ?? pythons()[0];

Deno.test("the bundle alone in an empty directory does attach, thread, detach", async () => {
  const work = Deno.makeTempDirSync({ prefix: "peeka-bundle-" });
  const empty = `${work}/empty`;
  await bundleAlone(work);
  const t = await Target.start(py, "idle");
  try {
    const env = cliEnv({ DENO_DIR: `${work}/deno-dir` });
    const run = (args: string[]) => cli(args, env, `${empty}/peeka.js`, empty);
    const a = await run(["attach", String(t.pid), "--json"]);
    assertEquals(a.code, 0, a.stderr);
    const th = await run(["thread", "--json"]);
    assertEquals(th.code, 0, th.stderr);
    const names = (th.lines[0] as { data: { threads: { name: string }[] } }).data.threads.map((x) =>
      x.name
    ).sort();
    assertEquals(names, ["MainThread", "sleeper"]);
    assertEquals((await run(["detach", "--json"])).code, 0);
    assertEquals(sessionDirOf(t.pid), null);
    assertEquals([...Deno.readDirSync(empty)].map((e) => e.name), ["peeka.js"]);
  } finally {
    await t.stop();
    Deno.removeSync(work, { recursive: true });
  }
});

Deno.test("invoked as peeka-cli it prints JSON lines even on a terminal (seed compatibility)", async () => {
  const dir = Deno.makeTempDirSync();
  Deno.symlinkSync(DENO, `${dir}/peeka-cli`);
  Deno.symlinkSync(DENO, `${dir}/peeka`);
  // `script` gives the command a real terminal as stdout.
  const onTerminal = async (name: string) => {
    const cmd = `${dir}/${name} run -A ${REPO}/mod.ts ps`;
    const out = await new Deno.Command("script", {
      args: ["-qec", cmd, "/dev/null"],
      cwd: REPO,
      env: cliEnv({ PATH: "/usr/bin:/bin" }),
      clearEnv: true,
    }).output();
    return new TextDecoder().decode(out.stdout).trim();
  };
  try {
    const asCli = await onTerminal("peeka-cli");
    const first = JSON.parse(asCli.split("\n")[0]);
    assertEquals([first.type, first.command], ["result", "ps"]);
    const asPeeka = await onTerminal("peeka");
    assert(!asPeeka.startsWith("{"), `human output on a terminal: ${asPeeka.slice(0, 80)}`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
