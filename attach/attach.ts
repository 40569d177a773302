// Attaching end to end: prepare the session directory, hand the agent to
// the target through an injector, wait until the agent answers.

import { AGENT_SOURCE, AGENT_VERSION } from "../agent/embed.ts";
import { AgentClient } from "../core/protocol.ts";
import {
  hasSocket,
  prepareSessionDir,
  processGid,
  type SessionPaths,
  sessionPaths,
  writePrivate,
} from "../core/session.ts";
import { AttachError, checkTarget, injectNative } from "./native.ts";
import { findInterpreter, NotPythonError, readMaps } from "./procfs.ts";

export interface AttachOptions {
  /** How long to wait for the agent to answer, in ms. */
  timeoutMs: number;
  via?: "ptrace";
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
 * in the target), and does nothing once the CLI has withdrawn boot.py.
 */
export function bootstrapSource(bootPath: string): string {
  const p = JSON.stringify(bootPath);
  return `try:\n __import__('builtins').exec(compile(open(${p},'rb').read(),${p},'exec'),{'__name__':'__peeka_boot__'})\nexcept BaseException:\n pass\n`;
}

/** Asks an agent for hello; null when none answers. */
export async function hello(
  socket: string,
  timeoutMs = 1000,
): Promise<Record<string, unknown> | null> {
  let client: AgentClient | null = null;
  try {
    client = await AgentClient.connect(socket, timeoutMs);
    return await client.request("hello");
  } catch {
    return null;
  } finally {
    client?.close();
  }
}

export async function attach(pid: number, opts: AttachOptions): Promise<AttachResult> {
  const t0 = performance.now();
  checkTarget(pid);
  try {
    findInterpreter(pid, readMaps(pid));
  } catch (e) {
    if (e instanceof NotPythonError) throw new AttachError("NOT_PYTHON", e.message);
    throw e;
  }
  const paths = sessionPaths(pid);
  const gid = processGid(pid);
  prepareSessionDir(paths, gid);

  if (hasSocket(paths)) {
    const h = await hello(paths.socket);
    if (h) return result(paths, h, "existing", t0, true);
  }

  const config = {
    session_dir: paths.targetDir,
    socket: `${paths.targetDir}/agent.sock`,
    uid: paths.uid,
    pid,
    token: crypto.randomUUID(),
    agent_version: AGENT_VERSION,
  };
  writePrivate(
    paths.boot,
    `${AGENT_SOURCE}\n\n_peeka_main(${JSON.stringify(config)})\n`,
    paths.uid,
    gid,
  );

  const injected = injectNative(pid, bootstrapSource(`${paths.targetDir}/boot.py`));
  const h = await waitForAgent(paths, t0 + opts.timeoutMs);
  if (!h) {
    // Withdraw: a bootstrap that runs later finds no boot.py and does nothing.
    for (const path of [paths.boot, paths.hostDir]) {
      try {
        Deno.removeSync(path);
      } catch { /* already gone, or the agent came up after all */ }
    }
    const late = hasSocket(paths) ? await hello(paths.socket) : null;
    if (!late) {
      throw new AttachError(
        "ATTACH_TIMEOUT",
        `process ${pid} did not reach a safe point within ${opts.timeoutMs} ms ` +
          `(a thread may hold the GIL in a long C call); attach cancelled, no agent will start. ` +
          `Retry later or with a longer --timeout`,
      );
    }
    return {
      ...result(paths, late, "ptrace", t0, false),
      route: injected.route,
      thread: injected.tid,
    };
  }
  return { ...result(paths, h, "ptrace", t0, false), route: injected.route, thread: injected.tid };
}

async function waitForAgent(
  paths: SessionPaths,
  deadline: number,
): Promise<Record<string, unknown> | null> {
  while (performance.now() < deadline) {
    if (hasSocket(paths)) {
      const h = await hello(paths.socket, 500);
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
