// Killing peeka at any instant of an attach never hurts the target: it never
// dies, never stays stopped, keeps computing the same results, and a later
// attach works.
import { assert, assertEquals } from "./helpers/assert.ts";
import { tracerPid } from "../process/procfs.ts";
import {
  cli,
  cliEnv,
  DENO,
  pythons,
  REPO,
  sessionDirOf,
  sleep,
  Target,
  waitUntil,
} from "./helpers/env.ts";

const py = pythons().find((p) => p.version === "3.12") ?? pythons()[0];
const ROUNDS = Number(Deno.env.get("PEEKA_KILL_ROUNDS") ?? 30);

async function killRounds(t: Target, env: Record<string, string>) {
  const tasks = t.taskCount();
  for (let i = 0; i < ROUNDS; i++) {
    // Spread the kills over the whole attach: process start, injection, waiting for the agent.
    const delay = (i * 37) % 160;
    const child = new Deno.Command(DENO, {
      args: ["run", "-A", `${REPO}/mod.ts`, "attach", String(t.pid), "--json"],
      env,
      clearEnv: true,
      cwd: REPO,
      stdout: "null",
      stderr: "null",
    }).spawn();
    await sleep(delay);
    try {
      child.kill("SIGKILL");
    } catch { /* it already finished */ }
    await child.status;
    await sleep(30);
    assert(t.alive(), `round ${i} (kill after ${delay} ms): target died`);
    assert(!"tT".includes(t.state()), `round ${i}: target left stopped`);
    assertEquals(tracerPid(t.pid), 0, `round ${i}: still traced`);
    // If that attach got as far as starting an agent, take it away so the next round injects again.
    if (sessionDirOf(t.pid)) {
      const d = await cli(["detach", String(t.pid), "--json"], env);
      if (d.code !== 0) {
        // The agent may still be starting (peeka died mid-wait): it must come up complete.
        await sleep(200);
        await cli(["detach", String(t.pid), "--json"], env);
      }
    }
  }
  const a = await cli(["attach", String(t.pid), "--json"], env);
  assertEquals(a.code, 0, a.stderr);
  assertEquals((await cli(["thread", "--json"], env)).code, 0);
  assertEquals((await cli(["detach", "--json"], env)).code, 0);
  await waitUntil(() => t.taskCount() === tasks, 3000, "every agent thread has exited");
  assertEquals(sessionDirOf(t.pid), null);
  assertEquals(t.errText, "");
}

Deno.test(`${py.version}: SIGKILL of peeka at ${ROUNDS} moments of attach, idle target`, async () => {
  const t = await Target.start(py, "idle");
  try {
    const before = await t.ask();
    await killRounds(t, cliEnv());
    assertEquals(await t.ask(), before);
  } finally {
    await t.stop();
  }
});

Deno.test(`${py.version}: SIGKILL of peeka at ${ROUNDS} moments of attach, busy target`, async () => {
  const t = await Target.start(py, "busy");
  try {
    await killRounds(t, cliEnv());
    const n = t.lines.filter((l) => l.startsWith("chunk")).length;
    const ref = await new Deno.Command(py.path, {
      args: [`${REPO}/tests/targets/target.py`, "reference", String(n)],
    }).output();
    assertEquals(
      t.lines.filter((l) => l.startsWith("chunk")).slice(0, n),
      new TextDecoder().decode(ref.stdout).trim().split("\n"),
    );
  } finally {
    await t.stop();
  }
});
