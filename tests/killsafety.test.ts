// Killing peeka at any instant of an attach never hurts the target: it never
// dies, never stays stopped, keeps computing the same results, and a later
// attach works.
import { assert, assertEquals } from "./helpers/assert.ts";
import { startTime, tracerPid } from "../process/procfs.ts";
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

/** When a round's kill is timed: from the CLI's start, or from its writing boot.py (the
 * agent's source, written just before a thread is seized). */
type From = "start" | "boot.py";

/** Where a kill landed, as seen from outside once the CLI is dead. */
interface Landing {
  /** A thread of the target was traced by the CLI when it died, or the bootstrap ran
   * afterwards (the CLI had seized a thread and pointed it at the trampoline). */
  seized: boolean;
  /** The CLI had reported the agent's answer (its success line). */
  answered: boolean;
}

/**
 * When to kill, from boot.py: within [early, late] ms, narrowed by where earlier kills landed
 * (a kill before the seizure raises `early`, one after the answer lowers `late`), so that
 * most kills land in the span that matters even as the machine's speed varies.
 */
class KillWindow {
  private early = 0;
  constructor(private late: number) {}

  /** The i-th delay: spread over the window (golden-ratio steps never repeat a spot). */
  delay(i: number): number {
    return Math.round(this.early + (this.late - this.early) * ((i * 0.618) % 1));
  }

  learn(delay: number, landed: Landing): void {
    if (!landed.seized && delay > this.early && delay < this.late - 2) this.early = delay;
    if (landed.answered && delay < this.late && delay > this.early + 2) this.late = delay;
  }
}

/** A third of the kills are spread over the CLI's start, the others time from boot.py. */
function moment(i: number, window: KillWindow): { from: From; delay: number } {
  return i % 3 === 0
    ? { from: "start", delay: (i * 37) % 160 }
    : { from: "boot.py", delay: window.delay(i) };
}

/** The target's session folder, as the CLI names it. */
function sessionDir(pid: number): string {
  return `/tmp/peeka-${Deno.uid()}/${pid}-${startTime(pid)}`;
}

/** Identifies one boot.py (each attach writes a new one), or null when there is none. */
function bootStamp(pid: number): string | null {
  try {
    const st = Deno.statSync(`${sessionDir(pid)}/boot.py`);
    return `${st.ino}:${st.mtime?.getTime()}:${st.ctime?.getTime()}`;
  } catch {
    return null;
  }
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether any thread of `pid` is traced by `tracer`. */
function tracedBy(pid: number, tracer: number): boolean {
  try {
    return [...Deno.readDirSync(`/proc/${pid}/task`)].some((task) =>
      tracerPid(Number(task.name)) === tracer
    );
  } catch {
    return false;
  }
}

function spawnAttach(t: Target, env: Record<string, string>): Deno.ChildProcess {
  return new Deno.Command(DENO, {
    args: ["run", "-A", `${REPO}/mod.ts`, "attach", String(t.pid), "--json"],
    env,
    clearEnv: true,
    cwd: REPO,
    stdout: "piped",
    stderr: "null",
  }).spawn();
}

/** Waits until the CLI writes a new boot.py (or ends); false if it never did. */
async function untilNewBoot(t: Target, before: string | null, ended: () => boolean) {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline && !ended()) {
    const now = bootStamp(t.pid);
    if (now !== null && now !== before) return true;
    await sleep(1);
  }
  return false;
}

/** Milliseconds from boot.py to the attach's success line, for a full attach (then detached). */
async function bootToAnswerMs(t: Target, env: Record<string, string>): Promise<number> {
  const child = spawnAttach(t, env);
  let answeredAt = 0;
  const answered = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      if (chunk.includes('"type":"success"')) answeredAt ||= performance.now();
    }
  })();
  assert(await untilNewBoot(t, bootStamp(t.pid), () => answeredAt > 0), "no boot.py written");
  const bootAt = performance.now();
  await answered;
  assertEquals((await child.status).code, 0, "the measured attach succeeded");
  assertEquals((await cli(["detach", "--pid", String(t.pid), "--json"], env)).code, 0);
  return answeredAt - bootAt;
}

/** Starts an attach, kills it at its moment, says where the kill landed. */
async function killedAttach(
  t: Target,
  env: Record<string, string>,
  when: { from: From; delay: number },
): Promise<Landing> {
  const before = bootStamp(t.pid);
  const child = spawnAttach(t, env);
  let ended = false;
  const out = child.output().finally(() => ended = true);
  if (when.from === "boot.py") await untilNewBoot(t, before, () => ended);
  await sleep(when.delay);
  const traced = tracedBy(t.pid, child.pid);
  try {
    child.kill("SIGKILL");
  } catch { /* it already finished */ }
  const answered = new TextDecoder().decode((await out).stdout).includes('"type":"success"');
  return { seized: traced || await bootstrapRan(t, before), answered };
}

/** The bootstrap leaves boot.started once it ran; a redirected thread runs it soon after. */
async function bootstrapRan(t: Target, before: string | null): Promise<boolean> {
  const marker = `${sessionDir(t.pid)}/boot.started`;
  if (bootStamp(t.pid) === before) return exists(marker); // no boot.py of this attach
  const deadline = Date.now() + 200;
  while (Date.now() < deadline && !exists(marker)) await sleep(5);
  return exists(marker);
}

/** Takes away an agent a killed attach started, so that the next round injects again. */
async function detachLeftover(t: Target, env: Record<string, string>) {
  if (!sessionDirOf(t.pid)) return;
  const detach = () => cli(["detach", "--pid", String(t.pid), "--json"], env);
  if ((await detach()).code !== 0) {
    // The agent may still be starting (peeka died mid-wait): it must come up complete.
    await sleep(200);
    await detach();
  }
}

async function killRounds(t: Target, env: Record<string, string>) {
  const tasks = t.taskCount();
  const landings: string[] = [];
  let inWindow = 0;
  const window = new KillWindow(await bootToAnswerMs(t, env));
  for (let i = 0; i < ROUNDS; i++) {
    const when = moment(i, window);
    const landed = await killedAttach(t, env, when);
    if (when.from === "boot.py") window.learn(when.delay, landed);
    landings.push(
      `${when.from}+${when.delay}:${landed.seized ? "S" : "-"}${landed.answered ? "A" : "-"}`,
    );
    if (landed.seized && !landed.answered) inWindow++;
    await sleep(30);
    const where = `round ${i} (kill ${when.delay} ms after ${when.from})`;
    assert(t.alive(), `${where}: target died`);
    assert(!"tT".includes(t.state()), `${where}: target left stopped`);
    assertEquals(tracerPid(t.pid), 0, `${where}: still traced`);
    await detachLeftover(t, env);
  }
  // The kills that matter land between seizing a thread and the agent's answer.
  assert(
    inWindow * 3 >= ROUNDS,
    `only ${inWindow} of ${ROUNDS} kills landed after a thread was seized and before the ` +
      `agent answered (S: seized, A: answered): ${landings.join(" ")}`,
  );
  console.log(
    `${inWindow} of ${ROUNDS} kills landed between seizing and the agent's answer: ` +
      landings.join(" "),
  );
  const a = await cli(["attach", String(t.pid), "--json"], env);
  assertEquals(a.code, 0, a.stderr);
  assertEquals((await cli(["thread", "--pid", String(t.pid), "--json"], env)).code, 0);
  assertEquals((await cli(["detach", "--pid", String(t.pid), "--json"], env)).code, 0);
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
