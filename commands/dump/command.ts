// dump: every Python thread's stack, which thread holds the GIL and what each thread does in
// the kernel, read from outside (process/pystate.ts): no agent, no injection, and by default
// not even a pause, so it answers when the target is too stuck to attach to.
import { type CommandContext, defineCommand, UsageError } from "../../core/command.ts";
import type { Output } from "../../core/output.ts";
import {
  type PyFrame,
  type PyInterpreter,
  PyStateReader,
  type PyThread,
} from "../../process/pystate.ts";
import { type TaskState, taskStates } from "../../process/taskstate.ts";
import { withThreadsStopped } from "../../process/freeze.ts";
import { PeekaError } from "../../process/errors.ts";

interface DumpedFrame {
  function: string;
  qualname: string;
  file: string;
  line: number | null;
  /** --locals: the bound local variables; null when they could not be read (locals_note). */
  locals?: { name: string; repr: string; type: string | null }[] | null;
  locals_note?: string;
}

interface DumpedThread {
  ident: number;
  native_id: number | null;
  name: string | null;
  is_main: boolean;
  holds_gil: boolean;
  /** The interpreter the thread state belongs to (0: the main one; others: subinterpreters). */
  interpreter_id: number;
  main_interpreter: boolean;
  /** Innermost frame last, as `thread` shows it; null when the thread moved too fast. */
  stack: DumpedFrame[] | null;
  os_state: {
    tid: number;
    state: string;
    state_name: string;
    syscall: string | null;
    syscall_number: number | null;
  } | null;
}

/** One read of the process (threads held still around it with --blocking). */
function readProcess(pid: number, blocking: boolean, locals: boolean) {
  const opened = performance.now();
  const reader = PyStateReader.open(pid);
  const openMs = performance.now() - opened;
  // The kernel's view first: while held, every thread would read as stopped.
  const tasks = [...taskStates(pid).values()];
  const read = () => reader.read({ locals });
  const stacks = blocking ? withThreadsStopped(pid, read) : read();
  return { stacks, tasks, openMs };
}

function describe(thread: PyThread, tasks: TaskState[], pid: number): DumpedThread {
  // Python knows a thread by its id inside the target's PID namespace.
  const task = tasks.find((t) => t.nsTid === thread.nativeId);
  return {
    ident: thread.threadId,
    native_id: thread.nativeId,
    name: task?.name ?? null,
    is_main: task?.tid === pid,
    holds_gil: thread.holdsGil,
    interpreter_id: thread.interpreterId,
    main_interpreter: thread.mainInterpreter,
    stack: thread.stack?.map(dumpedFrame).reverse() ?? null,
    os_state: task
      ? {
        tid: task.tid,
        state: task.state,
        state_name: task.stateName,
        syscall: task.syscall?.name ?? null,
        syscall_number: task.syscall?.number ?? null,
      }
      : null,
  };
}

function dumpedFrame(f: PyFrame): DumpedFrame {
  const { localsNote, ...frame } = f;
  return localsNote === undefined ? frame : { ...frame, locals_note: localsNote };
}

/** No Python thread is one of the process's threads: the layout read something else. */
function unmatched(pid: number): PeekaError {
  return new PeekaError(
    "LAYOUT_UNVERIFIED",
    `process ${pid}: no Python thread state names a thread of the process; no stack is shown ` +
      "rather than a wrong one (a custom build?)",
  );
}

function osText(t: DumpedThread): string {
  const os = t.os_state;
  if (!os) return "";
  return os.syscall ? `${os.state_name} in ${os.syscall}` : os.state_name;
}

/** One interpreter as the result lists it. */
function dumpedInterpreter(i: PyInterpreter, threads: DumpedThread[]) {
  return {
    id: i.id,
    main: i.main,
    threads: threads.filter((t) => t.interpreter_id === i.id).length,
    own_gil: i.ownGil,
    gil: i.gil && {
      locked: i.gil.locked,
      holder: i.gil.holder,
      holder_interpreter_id: i.gil.holderInterpreter,
    },
  };
}

type DumpedInterpreter = ReturnType<typeof dumpedInterpreter>;

/** The heading of an interpreter's threads, when the process has more than one. */
function interpreterHeading(i: DumpedInterpreter): string {
  const gil = !i.gil
    ? "its GIL could not be read"
    : !i.main && !i.own_gil
    ? "shares the main interpreter's GIL"
    : `${i.main ? "GIL" : "its own GIL"} ${
      i.gil.locked && i.gil.holder !== null
        ? `held by thread ${i.gil.holder}`
        : i.gil.locked
        ? "locked"
        : "free"
    }`;
  return `Interpreter ${i.id}${i.main ? " (main)" : ""}: ${i.threads} thread(s), ${gil}`;
}

function render(
  pid: number,
  version: string,
  threads: DumpedThread[],
  interpreters: DumpedInterpreter[],
  ms: number,
  blocking: boolean,
) {
  const lines = [
    `Process ${pid} (Python ${version}): ${threads.length} thread(s)` +
    (interpreters.length > 1 ? ` in ${interpreters.length} interpreters` : "") +
    `, read in ${ms.toFixed(1)} ms ` +
    (blocking ? "with the threads paused" : "without stopping it"),
  ];
  for (const t of threads) {
    // Grouped by interpreter (the threads come sorted so), headed when there are several.
    const first = threads.find((o) => o.interpreter_id === t.interpreter_id) === t;
    if (interpreters.length > 1 && first) {
      lines.push("", interpreterHeading(interpreters.find((i) => i.id === t.interpreter_id)!));
    }
    const tags = [
      t.name ? `"${t.name}"` : null,
      t.native_id !== null ? `native ${t.native_id}` : null,
      t.is_main ? "main" : null,
    ].filter(Boolean).join(", ");
    lines.push("");
    lines.push(
      `Thread ${t.ident} (${tags})${t.holds_gil ? " [holds the GIL]" : ""} ${osText(t)}`.trimEnd(),
    );
    if (t.stack === null) lines.push("    (stack changed while read; try --blocking)");
    else if (!t.stack.length) lines.push("    (no Python frame)");
    for (const f of t.stack ?? []) {
      lines.push(`    ${f.qualname} (${f.file}:${f.line ?? "?"})`);
      if (f.locals_note) lines.push(`        (locals not shown: ${f.locals_note})`);
      for (const v of f.locals ?? []) lines.push(`        ${v.name} = ${v.repr}`);
    }
  }
  return lines.join("\n");
}

const round = (ms: number) => Math.round(ms * 100) / 100;

function dumpOne(out: Output, pid: number, blocking: boolean, locals: boolean): void {
  const started = performance.now();
  const { stacks, tasks, openMs } = readProcess(pid, blocking, locals);
  const elapsed = performance.now() - started;
  // By interpreter (the main one first: its id is 0), then the main thread first, then by OS
  // thread id (the order the threads started, mostly).
  const threads = stacks.threads.map((t) => describe(t, tasks, pid)).sort((a, b) =>
    a.interpreter_id - b.interpreter_id || Number(b.is_main) - Number(a.is_main) ||
    (a.native_id ?? 0) - (b.native_id ?? 0)
  );
  const interpreters = stacks.interpreters.map((i) => dumpedInterpreter(i, threads));
  if (stacks.nativeIdsFromState && !threads.some((t) => t.os_state)) throw unmatched(pid);
  for (const t of threads) out.event("thread", { pid, ...t });
  out.result("dump", {
    pid,
    python: stacks.version,
    source: "outside", // read from the process's memory, no agent (as `thread` says when it falls back)
    blocking,
    locals,
    threads: threads.length,
    /** The main interpreter's GIL (`interpreters` has each one's). */
    gil: { locked: stacks.gil.locked, holder: stacks.gil.holder },
    interpreters,
    elapsed_ms: round(elapsed),
    /** Of which: finding the interpreter and its symbols (ELF tables) before reading. */
    open_ms: round(openMs),
  }, () => render(pid, stacks.version, threads, interpreters, elapsed, blocking));
}

/** --pid, or the attached process; dump needs no attach, so say to give a pid when none is. */
function defaultPid(ctx: CommandContext): number {
  try {
    return ctx.targetPid();
  } catch (e) {
    if (!(e instanceof PeekaError) || e.code !== "NOT_ATTACHED") throw e;
    throw new UsageError("which process? give its pid: peeka dump PID (no attach needed)");
  }
}

export default defineCommand({
  name: "dump",
  summary: "Show every thread's stack from outside, with no agent (for a stuck process)",
  description: "Read every Python thread's stack (function, file, line), which thread holds the " +
    "GIL and each thread's OS state (running, sleeping, in which system call) straight from the " +
    "target's memory: nothing is injected and no agent starts, so it works on a process too " +
    "stuck to attach to. CPython 3.8 to 3.15. The threads keep running unless --blocking.",
  arguments: [{ name: "pid...", description: "processes to read (or --pid 12,13)" }],
  options: [{
    flags: "--blocking",
    description: "pause the threads (ptrace, no signal) for a consistent snapshot; always resumed",
  }, {
    flags: "--locals",
    description: "each frame's local variables too: short reprs of None, bool, int, float, str, " +
      "bytes read from memory (no target code runs), the type and length of others",
  }],
  needsTarget: true,
  run(ctx) {
    // `dump 12 13` as `dump --pid 12,13` (which the runner fans out, one run per pid).
    // (commander hands the variadic argument over as one array: flattened by String)
    const listed = ctx.args.flatMap((a) => String(a).split(",")).filter(Boolean).map(Number);
    if (listed.some((p) => !Number.isInteger(p) || p <= 0)) {
      throw new UsageError(`not a process id: ${ctx.args.join(" ")}`);
    }
    for (const pid of listed.length ? listed : [defaultPid(ctx)]) {
      dumpOne(ctx.out, pid, Boolean(ctx.opts.blocking), Boolean(ctx.opts.locals));
    }
    return Promise.resolve(0);
  },
});
