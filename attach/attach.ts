// Attaching end to end: prepare the session directory, hand the agent to
// the target through an injector, wait until the agent answers.

import { AGENT_SOURCE, AGENT_VERSION } from "../agent/embed.ts";
import { AgentClient, AgentTimeoutError } from "../core/protocol.ts";
import {
  clearSession,
  hasSocket,
  noSpace,
  openSessionDir,
  processGid,
  type SessionPaths,
  sessionPaths,
} from "../core/session.ts";
import { isNoSpace, type SafeDir } from "../process/safefs.ts";
import { checkTarget, injectNative } from "./native.ts";
import { AttachError } from "../process/errors.ts";
import { PyStateReader } from "../process/pystate.ts";
import {
  findInterpreter,
  type Interpreter,
  namespacePid,
  NotPythonError,
  readMaps,
} from "../process/procfs.ts";
import {
  locateRemoteExec,
  requestRemoteExec,
  withdrawRemoteExec,
  withdrawStaleRequests,
} from "./pep768.ts";

export type Mechanism = "pep768" | "ptrace";

export interface AttachOptions {
  /** How long to wait for the agent to answer, in ms (all mechanisms together). */
  timeoutMs: number;
  /** Force one mechanism; by default PEP 768 on 3.14+, falling back to ptrace. */
  via?: Mechanism;
  /** How long a PEP 768 request may wait for a thread to run Python before the fallback. */
  pep768TimeoutMs?: number;
  /** Progress messages (mechanism choices, fallbacks). */
  onStatus?: (message: string) => void;
}

export interface AttachResult {
  pid: number;
  python_version: string;
  socket: string;
  mechanism: string;
  route?: string;
  thread?: number;
  elapsed_ms: number;
  reused: boolean;
  agent_version: string;
}

/**
 * The Python the target runs to start the agent, both ways: as the string the trampoline
 * passes to PyRun_SimpleString, and as the PEP 768 script. It swallows every exception
 * (nothing may reach the target's stderr, and a pending call that fails would raise SystemError
 * in the target), and does nothing once the CLI has withdrawn boot.py. Once it has read
 * boot.py it leaves `startedMarker`, so a timeout can say whether the agent was starting.
 */
export function bootstrapSource(bootPath: string, startedMarker: string): string {
  const p = JSON.stringify(bootPath), m = JSON.stringify(startedMarker);
  return `try:\n import os\n source = open(${p},'rb').read()\n` + startedMark(m) +
    ` __import__('builtins').exec(compile(source,${p},'exec'),{'__name__':'__peeka_boot__'})\n` +
    `except BaseException:\n pass\n`;
}

/** Leaves the "started" marker; never follows a name planted there, never fails the bootstrap. */
function startedMark(quotedPath: string): string {
  return ` try:\n  os.close(os.open(${quotedPath}, os.O_WRONLY|os.O_CREAT|os.O_NOFOLLOW|os.O_CLOEXEC, 0o600))\n` +
    ` except OSError:\n  pass\n`;
}

/**
 * Asks an agent for hello; null when none answers. With `silentThrows`, an agent that accepts
 * the connection but does not answer within `timeoutMs` is an AgentTimeoutError (saying why,
 * e.g. a thread holds the GIL) rather than "no agent": a second one must not be injected.
 */
export async function hello(
  socket: string,
  timeoutMs = 1000,
  pid?: number,
  silentThrows = false,
): Promise<Record<string, unknown> | null> {
  let client: AgentClient | null = null;
  try {
    client = await AgentClient.connect(socket, timeoutMs);
    const h = await client.request("hello", {}, undefined, timeoutMs);
    // Whatever answers on the session's socket must be the target itself (its pid as it sees it).
    if (pid !== undefined && Number(h.pid) !== namespacePid(pid)) return null;
    return h;
  } catch (e) {
    if (silentThrows && e instanceof AgentTimeoutError) throw e;
    return null;
  } finally {
    client?.close();
  }
}

export async function attach(pid: number, opts: AttachOptions): Promise<AttachResult> {
  const t0 = performance.now();
  const deadline = t0 + opts.timeoutMs;
  checkTarget(pid, false); // another peeka attaching right now traces it for a moment

  let interp: Interpreter;
  try {
    interp = findInterpreter(pid, readMaps(pid));
  } catch (e) {
    if (e instanceof NotPythonError) throw new AttachError("NOT_PYTHON", e.message);
    throw e;
  }
  const paths = sessionPaths(pid);
  const gid = processGid(pid);
  // One attach at a time per process: the session directory is locked for the whole attach,
  // so a second one waits and then finds the first one's agent (or its clean failure).
  for (let tries = 0;; tries++) {
    const dir = openSessionDir(paths, gid);
    try {
      if (!(await dir.lock(deadline))) {
        throw new AttachError(
          "ATTACH_BUSY",
          `another peeka has been attaching to process ${pid} for ${opts.timeoutMs} ms and ` +
            `still holds its session; wait for it to end, then attach again`,
        );
      }
      // The holder gave up and removed the directory while we waited: take a fresh one.
      if (!dir.stillLinked() && tries < 3) continue;
      return await attachLocked(pid, interp, paths, gid, dir, t0, deadline, opts);
    } finally {
      dir.close();
    }
  }
}

type Hello = Record<string, unknown>;

/** One attach, as each mechanism sees it. */
interface Attempt {
  pid: number;
  interp: Interpreter;
  paths: SessionPaths;
  dir: SafeDir;
  owner: { uid: number; gid: number };
  deadline: number;
  opts: AttachOptions;
}

/** What one mechanism got to. */
interface Injected {
  /** The agent's hello, once it answered; null when it did not in time. */
  agent: Hello | null;
  /** ptrace: how the bootstrap ran, and on which thread (reported in the result). */
  route?: string;
  thread?: number;
  /** The bootstrap had begun (its marker exists) when the wait ended: the timeout says so. */
  began?: boolean;
  /** PEP 768: a thread took the request and has not started the stub yet: its file must stay. */
  stubInFlight?: boolean;
}

/** A way to get the bootstrap run in the target. */
interface Injector {
  name: Mechanism;
  /** Whether this attach tries it: forced by `via`, or by default for this interpreter. */
  available(a: Attempt): boolean;
  /** Gets the bootstrap run and waits for the agent; throws an AttachError when it cannot. */
  inject(a: Attempt): Promise<Injected>;
  /** After the attach gave up and withdrew boot.py: an agent this injection brought up anyway. */
  withdraw(a: Attempt): Promise<Hello | null>;
}

/** The mechanisms in the order attach() tries them: the next one is the fallback. */
const INJECTORS: Injector[] = [
  {
    name: "pep768",
    available: ({ opts, interp }) =>
      opts.via === "pep768" || (opts.via === undefined && supportsPep768(interp)),
    inject: injectPep768,
    // Its requests are taken back as soon as one thread runs the stub (or none did in time);
    // a stub still in flight keeps its file (abandonSession).
    withdraw: () => Promise.resolve(null),
  },
  {
    name: "ptrace",
    available: ({ opts }) => opts.via !== "pep768",
    inject: injectPtrace,
    withdraw: lateAgent,
  },
];
export const MECHANISMS: Mechanism[] = INJECTORS.map((i) => i.name);

function supportsPep768(interp: Interpreter): boolean {
  const v = interp.version;
  return v !== null && (v.major > 3 || v.minor >= 14);
}

async function attachLocked(
  pid: number,
  interp: Interpreter,
  paths: SessionPaths,
  gid: number,
  dir: SafeDir,
  t0: number,
  deadline: number,
  opts: AttachOptions,
): Promise<AttachResult> {
  checkTarget(pid);
  if (dir.entry("agent.sock")?.isSocket) {
    const h = await hello(paths.socket, Math.max(500, deadline - performance.now()), pid, true);
    if (h) return result(paths, h, "existing", t0, true);
  }
  // Requests a killed attach left in threads that never ran Python since: they would run a
  // stub we are about to remove and print an error in the target.
  if (supportsPep768(interp)) withdrawLeftoverRequests(pid, interp);
  // What a killed attach left (the agent's own socket and log are the agent's to replace).
  clearSession(dir, ["agent.sock", "agent.log"]);

  const attempt: Attempt = {
    pid,
    interp,
    paths,
    dir,
    owner: { uid: paths.uid, gid },
    deadline,
    opts,
  };
  const tried: [Injector, Injected][] = [];
  try {
    writeBoot(attempt);
    return await injectInOrder(attempt, tried, t0);
  } catch (e) {
    return await giveUp(attempt, tried, t0, e);
  }
}

/** Tries the available mechanisms in order (each tried one lands in `tried`); the first agent wins. */
async function injectInOrder(
  attempt: Attempt,
  tried: [Injector, Injected][],
  t0: number,
): Promise<AttachResult> {
  const { pid, opts } = attempt;
  const injectors = INJECTORS.filter((i) => i.available(attempt));
  for (const [n, injector] of injectors.entries()) {
    const next = injectors[n + 1];
    let injected: Injected;
    try {
      injected = await injector.inject(attempt);
    } catch (e) {
      if (!next || !(e instanceof AttachError)) throw e;
      opts.onStatus?.(`${e.message}; attaching with ${next.name} instead`);
      continue;
    }
    tried.push([injector, injected]);
    if (injected.agent) return injectedResult(attempt, injected.agent, injector, injected, t0);
    if (!next) throw timeoutError(pid, opts.timeoutMs, injected.began);
  }
  throw timeoutError(pid, opts.timeoutMs);
}

/**
 * `peeka run`: a process started with a bootstrap that waits for its own session's boot.py and
 * runs it (no injection). The session and boot.py are made exactly as attach makes them, then
 * the agent's answer is awaited; `alive` says whether the process still runs (a bootstrap that
 * died is said at once, not at the deadline). On failure the session is withdrawn.
 */
export async function launchAgent(
  pid: number,
  timeoutMs: number,
  alive: () => boolean,
): Promise<AttachResult> {
  const t0 = performance.now();
  const deadline = t0 + timeoutMs;
  const paths = sessionPaths(pid);
  const gid = processGid(pid);
  const dir = openSessionDir(paths, gid);
  try {
    if (!(await dir.lock(deadline))) {
      throw new AttachError("ATTACH_BUSY", `another peeka holds the session of process ${pid}`);
    }
    clearSession(dir, ["agent.sock", "agent.log"]);
    writeBoot({ pid, paths, dir, owner: { uid: paths.uid, gid } });
    while (performance.now() < deadline && alive()) {
      const h = hasSocket(paths) ? await hello(paths.socket, 500, pid) : null;
      if (h) return result(paths, h, "launch", t0, false);
      await sleep(2);
    }
    abandonSession(dir, false);
    throw new AttachError(
      "ATTACH_TIMEOUT",
      alive()
        ? `process ${pid} did not start the agent within ${timeoutMs} ms`
        : `process ${pid} exited before its agent started`,
    );
  } catch (e) {
    if (!(e instanceof AttachError)) abandonSession(dir, false);
    throw isNoSpace(e) ? noSpace(paths) : e;
  } finally {
    dir.close();
  }
}

/** Withdraws what the attach left, takes an agent that came up anyway, else rethrows `error`. */
async function giveUp(
  attempt: Attempt,
  tried: [Injector, Injected][],
  t0: number,
  error: unknown,
): Promise<AttachResult> {
  abandonSession(attempt.dir, tried.some(([, injected]) => injected.stubInFlight));
  for (const [injector, injected] of tried) {
    const late = await injector.withdraw(attempt);
    if (late) return injectedResult(attempt, late, injector, injected, t0);
  }
  throw isNoSpace(error) ? noSpace(attempt.paths) : error;
}

/** boot.py: the agent and its configuration, read by whichever bootstrap runs. */
function writeBoot(
  { pid, paths, dir, owner }: Pick<Attempt, "pid" | "paths" | "dir" | "owner">,
): void {
  const config = {
    session_dir: paths.targetDir,
    socket: `${paths.targetDir}/agent.sock`,
    uid: paths.uid,
    pid,
    token: crypto.randomUUID(),
    agent_version: AGENT_VERSION,
  };
  dir.createFile(
    "boot.py",
    `${AGENT_SOURCE}\n\n_peeka_main(${JSON.stringify(config)})\n`,
    0o600,
    owner,
  );
}

/** The native injector: one thread runs the bootstrap through the trampoline. */
async function injectPtrace({ pid, interp, paths, dir, deadline }: Attempt): Promise<Injected> {
  const boot = `${paths.targetDir}/boot.py`, started = `${paths.targetDir}/boot.started`;
  const { route, tid } = injectNative(pid, interp, bootstrapSource(boot, started));
  const agent = await waitForAgent(paths, deadline);
  return { agent, route, thread: tid, began: !agent && dir.entry("boot.started") !== null };
}

/** A bootstrap may have read boot.py just before it was withdrawn: then the agent is complete. */
async function lateAgent({ pid, paths }: Attempt): Promise<Hello | null> {
  return hasSocket(paths) ? await hello(paths.socket, 1000, pid) : null;
}

function injectedResult(
  { paths }: Attempt,
  agent: Hello,
  injector: Injector,
  injected: Injected,
  t0: number,
): AttachResult {
  const r = result(paths, agent, injector.name, t0, false);
  return injected.route === undefined
    ? r
    : { ...r, route: injected.route, thread: injected.thread };
}

/**
 * Takes back PEP 768 requests an earlier peeka left pending (it was killed between asking and
 * withdrawing): only requests for a peeka stub, recognised by their path. Run by attach and
 * detach; a target whose layout cannot be read is left alone (there is nothing to withdraw).
 */
export function withdrawLeftoverRequests(pid: number, interp?: Interpreter): number {
  try {
    const target = locateRemoteExec(pid, interp ?? findInterpreter(pid, readMaps(pid)));
    return withdrawStaleRequests(
      target,
      (path) => /^\/tmp\/peeka-\d+\/\d+-\d+\/pep768\.py$/.test(path),
    );
  } catch {
    return 0;
  }
}

/**
 * Signals every thread state; the agent's hello once one ran the stub, or null (requests
 * withdrawn) when none did within the PEP 768 wait.
 */
async function injectPep768(
  { pid, interp, paths, dir, owner, deadline, opts }: Attempt,
): Promise<Injected> {
  const target = locateRemoteExec(pid, interp); // checks everything before any write
  const stub = `${paths.targetDir}/pep768.py`;
  dir.createFile(
    "pep768.py",
    bootstrapSource(`${paths.targetDir}/boot.py`, `${stub.slice(0, -3)}.started`),
    0o600,
    owner,
  );
  requestRemoteExec(target, stub);
  const started = () => dir.entry("pep768.started") !== null;
  const startBy = Math.min(deadline, performance.now() + (opts.pep768TimeoutMs ?? 300));
  while (performance.now() < startBy && !started()) await sleep(1);
  if (!started()) {
    const taken = target.threads.length - withdrawRemoteExec(target);
    if (taken === 0 && !started()) {
      opts.onStatus?.(
        `no thread of process ${pid} ran Python within ${opts.pep768TimeoutMs ?? 300} ms ` +
          `(all blocked in system calls or in C code)` +
          (opts.via === "pep768" ? "" : "; attaching with ptrace instead"),
      );
      return { agent: null, stubInFlight: false };
    }
    // A thread took the request between our look and the withdrawal: let it run.
  }
  const agent = await waitForAgent(paths, deadline);
  withdrawRemoteExec(target); // the other threads need not run it as well
  return { agent, stubInFlight: !started() };
}

/**
 * Gives up: withdraws boot.py so a bootstrap that runs later does nothing,
 * and removes the session unless a PEP 768 script is still on its way (it
 * must find its file, or the interpreter would print an error).
 */
function abandonSession(dir: SafeDir, pep768InFlight: boolean): void {
  try {
    if (pep768InFlight) {
      dir.remove("boot.py");
    } else {
      clearSession(dir, ["agent.sock", "agent.log"]);
      dir.removeSelf(); // only when empty: an agent that came up after all keeps its files
    }
  } catch { /* already gone */ }
}

function timeoutError(pid: number, ms: number, bootstrapRan = false): AttachError {
  // A thread that runs Python without pause and also releases the GIL often (an asyncio
  // loop polling with a zero timeout) can starve every other thread of it, ours too.
  const why = bootstrapRan
    ? `the agent began starting in process ${pid} but did not answer within ${ms} ms ` +
      `(its threads keep the GIL busy); attach cancelled, no agent will run. ` +
      `Retry with a longer --timeout, e.g. 30000`
    : `process ${pid} did not reach a safe point within ${ms} ms ` +
      `(${gilHolder(pid) ?? "a thread may hold the GIL in a long C call"}); attach cancelled, ` +
      `no agent will start. Retry later or with a longer --timeout`;
  return new AttachError(
    "ATTACH_TIMEOUT",
    `${why}; \`peeka dump ${pid}\` shows every thread's stack without an agent`,
  );
}

/** Which thread holds the GIL and where, read from outside (as `peeka dump`); null if unknown. */
function gilHolder(pid: number): string | null {
  try {
    const holder = PyStateReader.open(pid).read().threads.find((t) =>
      t.holdsGil && t.mainInterpreter
    );
    if (!holder) return null;
    const top = holder.stack?.[0];
    const where = top ? ` in ${top.qualname} (${top.file}:${top.line ?? "?"})` : "";
    return `thread ${holder.nativeId ?? holder.threadId} holds the GIL${where}`;
  } catch {
    return null; // the hint is a bonus: the timeout is said anyway
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitForAgent(
  paths: SessionPaths,
  deadline: number,
): Promise<Record<string, unknown> | null> {
  while (performance.now() < deadline) {
    if (hasSocket(paths)) {
      const h = await hello(paths.socket, 500, paths.pid);
      if (h) return h;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  return null;
}

function result(
  paths: SessionPaths,
  h: Record<string, unknown>,
  mechanism: string,
  t0: number,
  reused: boolean,
): AttachResult {
  return {
    pid: paths.pid,
    python_version: String(h.python_version ?? "?"),
    socket: paths.socket,
    mechanism,
    elapsed_ms: Math.round((performance.now() - t0) * 100) / 100,
    reused,
    agent_version: String(h.agent_version ?? AGENT_VERSION),
  };
}
