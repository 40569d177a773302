// The time of one `peeka dump` (read from outside, no agent) against `py-spy dump`, on the
// stuck target (a GIL held in C, two deadlocked threads): wall time of the whole command
// (Deno's start included) and peeka's own read, medians of RUNS; without pausing the target
// (py-spy --nonblocking) and with it (peeka --blocking, py-spy's default); and with each
// frame's locals (peeka --locals, py-spy --locals), on the stuck target and on one whose frame
// holds a dozen locals of every kind (tests/targets/locals.py).
import { cli, cliEnv, type Python, pythons, REPO, Target } from "../tests/helpers/env.ts";
import { pySpy } from "./pyspy.ts";

const RUNS = 5;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (n: number | null) => (n === null ? "n/a" : n.toFixed(1)).padStart(7);

async function peekaDump(pid: number, extra: string[]) {
  const wall: number[] = [], own: number[] = [], walk: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await cli(["dump", "--pid", String(pid), "--json", ...extra], cliEnv());
    const result = r.lines.find((l) => l.type === "result") as {
      data: { elapsed_ms: number; open_ms: number };
    };
    if (r.code !== 0 || !result) throw new Error(`peeka dump failed: ${r.stderr}`);
    wall.push(r.ms);
    own.push(result.data.elapsed_ms);
    walk.push(result.data.elapsed_ms - result.data.open_ms);
  }
  return { wall: median(wall), own: median(own), walk: median(walk) };
}

/** Median wall time of `py-spy dump`, null when it cannot read this interpreter. */
async function pySpyDump(spy: string, pid: number, extra: string[]): Promise<number | null> {
  const wall: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const out = await new Deno.Command(spy, {
      args: ["dump", "--pid", String(pid), ...extra],
      stdout: "null",
      stderr: "null",
    }).output();
    if (!out.success) return null;
    wall.push(performance.now() - t0);
  }
  return median(wall);
}

async function benchDump(py: Python, spy: string | null): Promise<string> {
  const t = await Target.start(py, "120", { script: `${REPO}/tests/targets/stuck.py` });
  try {
    const free = await peekaDump(t.pid, []);
    const held = await peekaDump(t.pid, ["--blocking"]);
    const spyFree = spy ? await pySpyDump(spy, t.pid, ["--nonblocking"]) : null;
    const spyHeld = spy ? await pySpyDump(spy, t.pid, []) : null;
    return `${py.version.padEnd(7)} peeka ${ms(free.wall)} (read ${ms(free.own)}, walk ` +
      `${ms(free.walk)})  --blocking ${ms(held.wall)} (read ${
        ms(held.own)
      })  |  py-spy --nonblocking ` +
      `${ms(spyFree)}  blocking ${ms(spyHeld)}  (ms, median of ${RUNS})`;
  } finally {
    await t.stop();
  }
}

/** dump vs dump --locals vs py-spy dump --locals (both without pausing), on `script`. */
async function benchLocals(py: Python, spy: string | null, script: string): Promise<string> {
  const dir = Deno.makeTempDirSync({ prefix: "peeka-bench-" });
  const t = await Target.start(py, script === "locals.py" ? `${dir}/repr-called` : "120", {
    script: `${REPO}/tests/targets/${script}`,
  });
  try {
    const plain = await peekaDump(t.pid, []);
    const locals = await peekaDump(t.pid, ["--locals"]);
    const spyLocals = spy ? await pySpyDump(spy, t.pid, ["--nonblocking", "--locals"]) : null;
    return `${py.version.padEnd(7)} ${script.padEnd(9)} peeka dump ${ms(plain.wall)} (read ` +
      `${ms(plain.own)})  --locals ${ms(locals.wall)} (read ${ms(locals.own)}, walk ` +
      `${ms(locals.walk)})  |  py-spy --nonblocking --locals ${ms(spyLocals)}`;
  } finally {
    await t.stop();
    Deno.removeSync(dir, { recursive: true });
  }
}

export async function benchDumpAll(): Promise<string> {
  let spy: string | null = null;
  try {
    spy = await pySpy();
  } catch (e) {
    console.log(`(py-spy left out: it could not be installed: ${(e as Error).message})`);
  }
  const lines = [
    "dump: one stack dump of the stuck target: wall time of the command (peeka's own read, " +
    "of which the walk of the threads after the ELF symbols are found)",
  ];
  for (const py of pythons()) lines.push(await benchDump(py, spy));
  lines.push(
    `dump --locals: the same without pausing, with each frame's locals (ms, median of ${RUNS})`,
  );
  for (const py of pythons()) {
    for (const script of ["stuck.py", "locals.py"]) lines.push(await benchLocals(py, spy, script));
  }
  return lines.join("\n");
}

if (import.meta.main) console.log(await benchDumpAll());
