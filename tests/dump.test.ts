// dump reads stacks from outside: against a target whose main thread holds the GIL in a C call
// that does not return (ctypes.PyDLL keeps it) while two other threads are deadlocked on each
// other's lock, on every interpreter. The stacks name the functions and lines, the GIL holder
// is the sleeping thread, --blocking leaves the target running, and nothing is left behind:
// no agent, no session folder, no thread, no tracer, and the target computes what it would have.
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, pythons, REPO, sessionDirOf, Target } from "./helpers/env.ts";

const SCRIPT = `${REPO}/tests/targets/stuck.py`;
const SOURCE = Deno.readTextFileSync(SCRIPT).split("\n");

/** The line number of the first `text` after the line starting with `after` in stuck.py. */
function lineOf(after: string, text: string): number {
  const start = SOURCE.findIndex((l) => l.startsWith(after));
  const found = SOURCE.findIndex((l, i) => i > start && l.trim().startsWith(text));
  assert(start >= 0 && found > start, `stuck.py has no ${text} after ${after}`);
  return found + 1;
}

const EXPECTED = {
  gil: { function: "hold_gil_in_c", line: lineOf("def hold_gil_in_c", "return ctypes") },
  caller: { function: "<module>", line: lineOf("time.sleep(0.2)", "left = hold_gil_in_c()") },
  first: { function: "take_first_then_second", line: lineOf("def take_first_then", "with second") },
  second: {
    function: "take_second_then_first",
    line: lineOf("def take_second_then", "with first"),
  },
};

interface DumpedThread {
  ident: number;
  native_id: number;
  is_main: boolean;
  holds_gil: boolean;
  stack: { function: string; file: string; line: number }[];
  os_state: { tid: number; state: string; syscall: string | null };
}

async function dump(pid: number, ...extra: string[]) {
  const r = await cli(["dump", "--pid", String(pid), "--json", ...extra], cliEnv());
  assertEquals(r.code, 0, `dump failed: ${r.stderr}`);
  const threads = r.lines.filter((l) => l.event === "thread").map((l) => l.data as DumpedThread);
  const result = r.lines.find((l) => l.type === "result")?.data as Record<string, unknown>;
  return { threads, result };
}

/** The thread whose innermost frame runs `fn`, checked frame by frame from there. */
function threadIn(threads: DumpedThread[], ...frames: { function: string; line: number }[]) {
  const found = threads.find((t) => t.stack.at(-1)?.function === frames[0].function);
  assert(
    found,
    `no thread in ${frames[0].function}: ${JSON.stringify(threads.map((t) => t.stack))}`,
  );
  frames.forEach((want, i) => {
    const got = found.stack.at(-1 - i)!;
    assertEquals([got.function, got.line, got.file], [want.function, want.line, SCRIPT]);
  });
  return found;
}

function checkStuck(threads: DumpedThread[], result: Record<string, unknown>) {
  assertEquals(threads.length, 3);
  const holder = threadIn(threads, EXPECTED.gil, EXPECTED.caller);
  assert(holder.holds_gil && holder.is_main, "the sleeping main thread holds the GIL");
  assertEquals(holder.os_state.syscall?.endsWith("nanosleep"), true);
  assertEquals(result.gil, { locked: true, holder: holder.ident });
  for (const want of [EXPECTED.first, EXPECTED.second]) {
    const t = threadIn(threads, want);
    assert(!t.holds_gil, `${want.function} does not hold the GIL`);
    assertEquals([t.os_state.state, t.os_state.syscall], ["S", "futex"]);
  }
}

function tasksHeld(pid: number): string[] {
  return [...Deno.readDirSync(`/proc/${pid}/task`)].map((e) => {
    const stat = Deno.readTextFileSync(`/proc/${pid}/task/${e.name}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0];
  }).filter((s) => s === "t" || s === "T");
}

for (const python of pythons()) {
  Deno.test(`dump: a GIL held in C and a deadlock, from outside (${python.version})`, async () => {
    const target = await Target.start(python, "60", { script: SCRIPT });
    try {
      const tasks = target.taskCount();
      const plain = await dump(target.pid);
      checkStuck(plain.threads, plain.result);
      assertEquals(plain.result.python, python.version);

      const held = await dump(target.pid, "--blocking");
      checkStuck(held.threads, held.result);
      assertEquals(held.result.blocking, true);
      assertEquals(tasksHeld(target.pid), [], "--blocking resumed every thread");
      assert(/^TracerPid:\s+0$/m.test(Deno.readTextFileSync(`/proc/${target.pid}/status`)));

      assertEquals(sessionDirOf(target.pid), null, "no agent session was made");
      assertEquals(target.taskCount(), tasks, "no thread was added to the target");
      Deno.kill(target.pid, "SIGUSR1"); // ends the C call: the target finishes its work
      await target.waitFor((l) => l.startsWith("woke"));
      assertEquals(target.lines.at(-1), "woke True 499500 3");
      assertEquals(target.errText, "");
    } finally {
      await target.stop();
    }
  });
}

const LOCALS_SCRIPT = `${REPO}/tests/targets/locals.py`;

interface DumpedLocal {
  name: string;
  repr: string;
  type: string | null;
}

/** What `hold` in locals.py holds, as dump --locals renders it: [repr, type]. */
const EXPECTED_LOCALS: Record<string, [string, string]> = {
  count: ["42", "int"],
  negative: ["-7", "int"],
  big: [String(2n ** 100n), "int"],
  ratio: ["0.5", "float"],
  name: [`"it's"`, "str"],
  nothing: ["None", "NoneType"],
  flag: ["True", "bool"],
  items: ["<list of 3 items>", "list"],
  pair: ["<tuple of 2 items>", "tuple"],
  table: ["<dict of 1 item>", "dict"],
  data: ["b'\\x00ab'", "bytes"],
  long_text: [`'${"x".repeat(60)}'... (1000 chars)`, "str"],
  shared: ["'in a cell'", "cell"],
};

// --locals reads each frame's variables from memory: the values of the simple types, the type
// of the others, and never the target's own code (Marker's __repr__ would create a file).
for (const python of pythons()) {
  Deno.test(`dump --locals: values read from memory, no target code run (${python.version})`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "peeka-locals-" });
    const marker = `${dir}/repr-was-called`;
    const target = await Target.start(python, marker, { script: LOCALS_SCRIPT });
    try {
      const { threads, result } = await dump(target.pid, "--locals");
      assertEquals(result.locals, true);
      const frame = threads[0].stack.at(-1) as unknown as {
        function: string;
        locals: DumpedLocal[];
      };
      assertEquals(frame.function, "hold");
      const byName = new Map(frame.locals.map((l) => [l.name, l]));
      for (const [name, [repr, type]] of Object.entries(EXPECTED_LOCALS)) {
        assertEquals([name, byName.get(name)?.repr, byName.get(name)?.type], [name, repr, type]);
      }
      const object = byName.get("marker")!;
      assertEquals(object.type, "Marker");
      assert(/^<Marker object at 0x[0-9a-f]+>$/.test(object.repr), object.repr);
      assertEquals(byName.get("inner")?.type, "function");

      const plain = await dump(target.pid);
      assert(plain.threads[0].stack.every((f) => !("locals" in f)), "no locals unless asked");

      // `thread` on a process that is not attached: the same view, marked, then NOT_ATTACHED.
      const thread = await cli(["thread", "--pid", String(target.pid), "--json"], cliEnv());
      assertEquals(thread.code, 1);
      assertEquals(thread.lines.find((l) => l.type === "status")?.source, "outside");
      const shown = thread.lines.find((l) => l.event === "thread")?.data as DumpedThread;
      assertEquals(shown.stack.at(-1)?.function, "hold");
      assertEquals(thread.lines.at(-1)?.code, "NOT_ATTACHED");

      Deno.kill(target.pid, "SIGUSR1"); // ends the C call: the target returns and exits
      await target.waitFor((l) => l === "woke");
      assertEquals(target.errText, "");
      assertEquals(sessionDirOf(target.pid), null, "no agent session was made");
      const called = await Deno.stat(marker).then(() => true, () => false);
      assert(!called, "the target's __repr__ was never called");
    } finally {
      await target.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("dump: a process that is not Python, or not a pid, gets a clear error", async () => {
  const other = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    const r = await cli(["dump", "--pid", String(other.pid), "--json"], cliEnv());
    assertEquals(r.code, 1);
    const error = r.lines.find((l) => l.type === "error")!;
    assertEquals(error.code, "NOT_PYTHON");
    assert(String(error.error).includes("not a CPython process"), String(error.error));
    const usage = await cli(["dump", "abc", "--json"], cliEnv());
    assertEquals([usage.code, usage.lines.find((l) => l.type === "error")?.code], [2, "USAGE"]);
  } finally {
    other.kill("SIGKILL");
    await other.status;
  }
});

/** The target in a PID and mount namespace of its own (a container): started by unshare, it
 * is pid 1 there. Returns the host pid of the Python process and a way to end it all. */
async function containedTarget(python: { path: string }) {
  const child = new Deno.Command("/usr/bin/unshare", {
    args: ["--pid", "--fork", "--kill-child", "--mount-proc", python.path, "-u", SCRIPT, "60"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let pid = 0;
  const stop = async () => {
    if (pid) Deno.kill(pid, "SIGKILL");
    child.kill("SIGKILL"); // --kill-child: its child (pid 1 inside) gets SIGKILL too
    await reader.cancel().catch(() => {});
    await child.status;
  };
  try {
    let text = "";
    while (!text.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the contained target ended before it was ready: ${text}`);
      text += value;
    }
    const children = Deno.readTextFileSync(`/proc/${child.pid}/task/${child.pid}/children`);
    pid = Number(children.trim().split(" ")[0]);
    return { pid, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

// One interpreter before 3.11 (OS thread ids from glibc's pthread) and one after (thread states
// keep them): both are the ids inside the namespace, mapped to the host's by NSpid.
for (const python of [pythons()[0], pythons().at(-1)!]) {
  Deno.test(`dump: a target in a PID namespace (container) (${python.version})`, async () => {
    const target = await containedTarget(python);
    try {
      const { threads } = await dump(target.pid);
      const main = threadIn(threads, EXPECTED.gil, EXPECTED.caller);
      assert(main.is_main && main.holds_gil, "the main thread, pid 1 inside, holds the GIL");
      assertEquals(main.native_id, 1);
      assertEquals(main.os_state.tid, target.pid);
      threadIn(threads, EXPECTED.first);
      threadIn(threads, EXPECTED.second);
    } finally {
      await target.stop();
    }
  });
}

const SUB_SCRIPT = `${REPO}/tests/targets/subinterp.py`;
const SUB_WORKER = `${REPO}/tests/targets/subinterp_worker.py`;

/** The line number of the first line of `file` that starts with `text` (indent ignored). */
function lineIn(file: string, text: string): number {
  const found = Deno.readTextFileSync(file).split("\n").findIndex((l) => l.trim().startsWith(text));
  assert(found >= 0, `${file} has no ${text}`);
  return found + 1;
}

/** The module that makes subinterpreters from Python on this version, or null when the
 * interpreter has none (asserted: the import fails as a missing module). */
async function subinterpreterModule(python: { path: string; version: string }) {
  const name = Number(python.version.split(".")[1]) >= 13 ? "_interpreters" : "_xxsubinterpreters";
  const out = await new Deno.Command(python.path, { args: ["-c", `import ${name}`] }).output();
  if (out.success) return name;
  const err = new TextDecoder().decode(out.stderr);
  assert(err.includes(`No module named '${name}'`), `${name} failed to import: ${err}`);
  return null;
}

type InterpThread = DumpedThread & { interpreter_id: number; main_interpreter: boolean };

/** The one thread whose innermost frame runs `fn` in `file` at `line` (or a line up to
 * `last`: a loop). */
function runningIn(threads: InterpThread[], fn: string, file: string, line: number, last = line) {
  const found = threads.filter((t) => t.stack.at(-1)?.function === fn);
  assertEquals(found.length, 1, `one thread in ${fn}: ${JSON.stringify(threads)}`);
  const top = found[0].stack.at(-1)!;
  assertEquals(top.file, file);
  assert(top.line >= line && top.line <= last, `${fn} at line ${top.line}`);
  return found[0];
}

// A subinterpreter exists (mod_wsgi runs its apps in them): dump reads every interpreter, the
// main one first, and tags each thread state with its interpreter; each interpreter's GIL is
// its own on 3.12+ (an isolated subinterpreter: its spinning thread holds it while the main
// thread holds the main one in C), the one GIL of the process before.
for (const python of pythons()) {
  Deno.test(`dump: the main interpreter's threads and a subinterpreter's, tagged (${python.version})`, async () => {
    if (!(await subinterpreterModule(python))) return;
    const target = await Target.start(python, "60", { script: SUB_SCRIPT });
    try {
      const sub = Number(target.lines.find((l) => l.startsWith("subinterpreter"))?.split(" ")[1]);
      assert(sub > 0, `the target names its subinterpreter: ${target.lines}`);
      const { threads, result } = await dump(target.pid);
      const all = threads as InterpThread[];
      const mainThreads = all.filter((t) => t.main_interpreter);
      assert(mainThreads.every((t) => t.interpreter_id === 0), "the main interpreter is id 0");
      assertEquals(all.slice(0, mainThreads.length), mainThreads, "the main interpreter first");
      const main = runningIn(
        mainThreads,
        "hold_gil_in_c",
        SUB_SCRIPT,
        lineIn(SUB_SCRIPT, "return ctypes"),
      );
      assert(main.is_main && main.holds_gil, "the main thread holds the main GIL");
      runningIn(mainThreads, "wait_in_worker", SUB_SCRIPT, lineIn(SUB_SCRIPT, "time.sleep(0.05)"));
      runningIn(
        mainThreads,
        "run_in_subinterpreter",
        SUB_SCRIPT,
        lineIn(SUB_SCRIPT, "interpreters.run_string"),
      );

      const subThreads = all.filter((t) => !t.main_interpreter);
      assert(subThreads.every((t) => t.interpreter_id === sub), JSON.stringify(subThreads));
      const spinning = runningIn(
        subThreads,
        "spin_in_subinterpreter",
        SUB_WORKER,
        lineIn(SUB_WORKER, "while time.monotonic() < ends"),
        lineIn(SUB_WORKER, "time.sleep(pause)"),
      );

      const ownGil = Number(python.version.split(".")[1]) >= 12;
      const interpreters = result.interpreters as Record<string, unknown>[];
      const mainGil = { locked: true, holder: main.ident, holder_interpreter_id: 0 };
      assertEquals(result.gil, { locked: true, holder: main.ident });
      assertEquals(interpreters, [
        { id: 0, main: true, threads: mainThreads.length, own_gil: false, gil: mainGil },
        {
          id: sub,
          main: false,
          threads: subThreads.length,
          own_gil: ownGil,
          gil: ownGil
            ? { locked: true, holder: spinning.ident, holder_interpreter_id: sub }
            : mainGil,
        },
      ]);
      assertEquals(spinning.holds_gil, ownGil, "the subinterpreter's thread holds its own GIL");
      assertEquals(sessionDirOf(target.pid), null, "no agent session was made");
    } finally {
      await target.stop();
    }
  });
}
