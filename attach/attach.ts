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
import { checkTarget, injectNative, type NativeResult } from "./native.ts";
import { AttachError } from "../process/errors.ts";
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
export const MECHANISMS: Mechanism[] = ["pep768", "ptrace"];

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
 * The string the target runs. It swallows every exception (nothing may reach
 * the target's stderr, and a pending call that fails would raise SystemError
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
  const v = interp.version;
  const modern = v !== null && (v.major > 3 || v.minor >= 14);
  // Requests a killed attach left in threads that never ran Python since: they would run a
  // stub we are about to remove and print an error in the target.
  if (modern) withdrawLeftoverRequests(pid, interp);
  // What a killed attach left (the agent's own socket and log are the agent's to replace).
  clearSession(dir, ["agent.sock", "agent.log"]);

  const config = {
    session_dir: paths.targetDir,
    socket: `${paths.targetDir}/agent.sock`,
    uid: paths.uid,
    pid,
    token: crypto.randomUUID(),
    agent_version: AGENT_VERSION,
  };
  const owner = { uid: paths.uid, gid };
  let inFlight = false; // a PEP 768 request was taken by a thread that has not started the script yet
  let injected: NativeResult | null = null;
  try {
    dir.createFile(
      "boot.py",
      `${AGENT_SOURCE}\n\n_peeka_main(${JSON.stringify(config)})\n`,
      0o600,
      owner,
    );
    const pep768First = opts.via === "pep768" || (opts.via === undefined && modern);
    if (pep768First) {
      try {
        const r = await attachPep768(pid, interp, paths, dir, owner, deadline, opts);
        if (r.agent) return result(paths, r.agent, "pep768", t0, false);
        inFlight = r.inFlight;
        if (opts.via === "pep768") throw timeoutError(pid, opts.timeoutMs);
      } catch (e) {
        if (opts.via === "pep768" || !(e instanceof AttachError)) throw e;
        opts.onStatus?.(`${e.message}; attaching with ptrace instead`);
      }
    }
    injected = injectNative(
      pid,
      bootstrapSource(`${paths.targetDir}/boot.py`, `${paths.targetDir}/boot.started`),
    );
    const h = await waitForAgent(paths, deadline);
    if (h) {
      return {
        ...result(paths, h, "ptrace", t0, false),
        route: injected.route,
        thread: injected.tid,
      };
    }
    throw timeoutError(pid, opts.timeoutMs, dir.entry("boot.started") !== null);
  } catch (e) {
    abandonSession(dir, inFlight);
    // A bootstrap may have read boot.py just before it was withdrawn: then the agent is complete.
    const late = injected && hasSocket(paths) ? await hello(paths.socket, 1000, pid) : null;
    if (late && injected) {
      return {
        ...result(paths, late, "ptrace", t0, false),
        route: injected.route,
        thread: injected.tid,
      };
    }
    throw isNoSpace(e) ? noSpace(paths) : e;
  }
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
 * Signals every thread state; returns the agent's hello once one ran the
 * script, or null (requests withdrawn) when none did within the PEP 768 wait.
 */
async function attachPep768(
  pid: number,
  interp: Interpreter,
  paths: SessionPaths,
  dir: SafeDir,
  owner: { uid: number; gid: number },
  deadline: number,
  opts: AttachOptions,
): Promise<{ agent: Record<string, unknown> | null; inFlight: boolean }> {
  const target = locateRemoteExec(pid, interp); // checks everything before any write
  const stub = `${paths.targetDir}/pep768.py`;
  dir.createFile(
    "pep768.py",
    pep768Stub(`${paths.targetDir}/boot.py`, `${stub.slice(0, -3)}.started`),
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
      return { agent: null, inFlight: false };
    }
    // A thread took the request between our look and the withdrawal: let it run.
  }
  const agent = await waitForAgent(paths, deadline);
  withdrawRemoteExec(target); // the other threads need not run it as well
  return { agent, inFlight: !started() };
}

/** The PEP 768 script: marks that it started, then runs the bootstrap; silent if withdrawn. */
function pep768Stub(boot: string, startedMarker: string): string {
  const b = JSON.stringify(boot), m = JSON.stringify(startedMarker);
  return `try:\n import os\n source = open(${b}, 'rb').read()\n` + startedMark(m) +
    ` exec(compile(source, ${b}, 'exec'), {'__name__': '__peeka_boot__'})\nexcept BaseException:\n pass\n`;
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
      `(a thread may hold the GIL in a long C call); attach cancelled, no agent will start. ` +
      `Retry later or with a longer --timeout`;
  return new AttachError("ATTACH_TIMEOUT", why);
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
