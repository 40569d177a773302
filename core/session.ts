// Where a target's agent lives and how the CLI finds it again.
//
// Each attached process has a session directory, named from the target's
// point of view: /tmp/peeka-<uid>/<pid>-<start time>. The parent is created
// 0700 and owned by the target's user, so only that user and root can reach
// the socket inside; the start time makes a reused pid a different name.
// The CLI remembers the last attached pid so later commands need no --pid.

import { processExists, processUid, readText, startTime } from "../attach/procfs.ts";

export interface SessionPaths {
  pid: number;
  uid: number;
  /** The directory as the target sees it (used in the bootstrap). */
  targetDir: string;
  /** The same directory as this process reaches it (through /proc/PID/root when namespaces differ). */
  hostDir: string;
  socket: string;
  boot: string;
}

export class SessionError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

function sameMountNamespace(pid: number): boolean {
  try {
    return Deno.readLinkSync(`/proc/${pid}/ns/mnt`) === Deno.readLinkSync("/proc/self/ns/mnt");
  } catch {
    return true;
  }
}

export function sessionPaths(pid: number): SessionPaths {
  const uid = processUid(pid);
  const start = startTime(pid);
  if (uid === null || start === null) {
    throw new SessionError("NO_SUCH_PROCESS", `no process with pid ${pid}`);
  }
  const targetDir = `/tmp/peeka-${uid}/${pid}-${start}`;
  const hostDir = sameMountNamespace(pid) ? targetDir : `/proc/${pid}/root${targetDir}`;
  return {
    pid,
    uid,
    targetDir,
    hostDir,
    socket: `${hostDir}/agent.sock`,
    boot: `${hostDir}/boot.py`,
  };
}

/** Removes session directories left by processes that are gone (killed before the agent could clean up). */
function removeStaleSessions(parent: string): void {
  for (const e of Deno.readDirSync(parent)) {
    const m = /^(\d+)-(\d+)$/.exec(e.name);
    if (!m || !e.isDirectory) continue;
    const pid = Number(m[1]);
    if (processExists(pid) && startTime(pid) === Number(m[2])) continue;
    try {
      Deno.removeSync(`${parent}/${e.name}`, { recursive: true });
    } catch { /* another peeka got there first */ }
  }
}

/** Creates (or checks) the session directory chain with owner-only access. */
export function prepareSessionDir(paths: SessionPaths, gid: number): void {
  const parent = paths.hostDir.slice(0, paths.hostDir.lastIndexOf("/"));
  for (const dir of [parent, paths.hostDir]) {
    try {
      Deno.mkdirSync(dir, { mode: 0o700 });
      if (Deno.uid() === 0 && paths.uid !== 0) Deno.chownSync(dir, paths.uid, gid);
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    const st = Deno.lstatSync(dir);
    if (!st.isDirectory || st.uid !== paths.uid || ((st.mode ?? 0) & 0o077) !== 0) {
      throw new SessionError(
        "UNSAFE_SESSION_DIR",
        `${dir} is not a private directory of uid ${paths.uid}; remove it and attach again`,
      );
    }
    if (dir === parent) removeStaleSessions(parent);
  }
}

export function processGid(pid: number): number {
  const m = /^Gid:\s+(\d+)\s+(\d+)/m.exec(readText(`/proc/${pid}/status`) ?? "");
  return m ? Number(m[2]) : 0;
}

/** Writes a file only the target's user can read. */
export function writePrivate(path: string, text: string, uid: number, gid: number): void {
  Deno.writeTextFileSync(path, text, { mode: 0o600 });
  Deno.chmodSync(path, 0o600);
  if (Deno.uid() === 0 && uid !== 0) Deno.chownSync(path, uid, gid);
}

export function hasSocket(paths: SessionPaths): boolean {
  try {
    return Deno.lstatSync(paths.socket).isSocket === true;
  } catch {
    return false;
  }
}

/** Pids of live processes that have an agent socket we can see. */
export function attachedPids(): number[] {
  const pids: number[] = [];
  let bases: Deno.DirEntry[] = [];
  try {
    bases = [...Deno.readDirSync("/tmp")].filter((e) =>
      e.isDirectory && /^peeka-\d+$/.test(e.name)
    );
  } catch {
    return pids;
  }
  for (const base of bases) {
    try {
      for (const e of Deno.readDirSync(`/tmp/${base.name}`)) {
        const m = /^(\d+)-(\d+)$/.exec(e.name);
        if (!m) continue;
        const pid = Number(m[1]);
        if (processExists(pid) && startTime(pid) === Number(m[2])) {
          if (hasSocket(sessionPaths(pid))) pids.push(pid);
        }
      }
    } catch { /* not ours to read */ }
  }
  return pids;
}

// --- remembering the current session -------------------------------------

function stateFile(): string {
  const dir = Deno.env.get("PEEKA_STATE_DIR") ??
    (Deno.env.get("XDG_STATE_HOME") ? `${Deno.env.get("XDG_STATE_HOME")}/peeka` : null) ??
    `${Deno.env.get("HOME") ?? "/tmp"}/.local/state/peeka`;
  return `${dir}/session.json`;
}

export function rememberSession(pid: number): void {
  const file = stateFile();
  try {
    Deno.mkdirSync(file.slice(0, file.lastIndexOf("/")), { recursive: true, mode: 0o700 });
    Deno.writeTextFileSync(file, JSON.stringify({ pid, start: startTime(pid) }) + "\n", {
      mode: 0o600,
    });
  } catch { /* remembering is a convenience; --pid still works */ }
}

export function forgetSession(pid: number): void {
  if (rememberedPid() === pid) {
    try {
      Deno.removeSync(stateFile());
    } catch { /* already gone */ }
  }
}

export function rememberedPid(): number | null {
  const text = readText(stateFile());
  if (!text) return null;
  try {
    const { pid, start } = JSON.parse(text);
    return processExists(pid) && startTime(pid) === start ? pid : null;
  } catch {
    return null;
  }
}

/** The pid a command acts on: --pid, else the remembered session, else the only attached process. */
export function resolvePid(explicit?: number): number {
  if (explicit !== undefined) return explicit;
  const remembered = rememberedPid();
  if (remembered !== null) return remembered;
  const live = attachedPids();
  if (live.length === 1) return live[0];
  if (live.length > 1) {
    throw new SessionError(
      "AMBIGUOUS_TARGET",
      `several processes are attached (${live.join(", ")}); choose one with --pid`,
    );
  }
  throw new SessionError(
    "NOT_ATTACHED",
    "not attached to any process; run 'peeka attach <pid>' first",
  );
}
