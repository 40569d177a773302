// Where a target's agent lives and how the CLI finds it again.
//
// Each attached process has a session directory, named from the target's
// point of view: /tmp/peeka-<uid>/<pid>-<start time>. The parent is created
// 0700 and owned by the target's user, so only that user and root can reach
// the socket inside; the start time makes a reused pid a different name.
// The CLI remembers the last attached pid so later commands need no --pid. The directories
// belong to the target's user, who may be hostile to root: they are only ever used through
// checked descriptors (openSessionDir), never by path.

import { processExists, processUid, readText, startTime } from "../process/procfs.ts";
import { E, isNoSpace, SafeDir, UnsafeDirError } from "../process/safefs.ts";
import { SysError } from "../process/libc.ts";
import { PeekaError } from "../process/errors.ts";

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

/** The session directory or the choice of target failed (no such process, not attached, …). */
export class SessionError extends PeekaError {}

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

/** The names a session directory may hold; nothing else is ever removed from it. */
export const SESSION_FILES = [
  "boot.py",
  "boot.started",
  "pep768.py",
  "pep768.started",
  "agent.sock",
  "agent.log",
];

/**
 * Opens (creating when missing) the session directory chain by descriptor, each level checked:
 * the target's /tmp (a real directory, sticky if others may write), /tmp/peeka-<uid> and the
 * per-process folder (real directories of the target's uid, 0700). Nothing here follows a
 * symlink, so a directory the target's user controls cannot redirect what root does
 * (process/safefs.ts). Leftovers of processes that are gone are removed on the way.
 */
export function openSessionDir(paths: SessionPaths, gid: number): SafeDir {
  const owner = { uid: paths.uid, gid };
  const priv = { uid: paths.uid, privateMode: true };
  const parts = paths.targetDir.split("/").filter(Boolean); // tmp, peeka-<uid>, <pid>-<start>
  const root = paths.hostDir === paths.targetDir ? "/" : `/proc/${paths.pid}/root`;
  try {
    const base = SafeDir.open(root, [
      { name: parts[0], rule: { uid: null, privateMode: false } },
      { name: parts[1], rule: priv, create: owner },
    ]);
    try {
      removeStaleSessions(base, paths.uid);
    } finally {
      base.close();
    }
    return SafeDir.open(root, [
      { name: parts[0], rule: { uid: null, privateMode: false } },
      { name: parts[1], rule: priv, create: owner },
      { name: parts[2], rule: priv, create: owner },
    ]);
  } catch (e) {
    throw sessionDirError(e, paths);
  }
}

/** Opens an existing session directory (checked as above) without creating anything; null if absent. */
export function findSessionDir(paths: SessionPaths): SafeDir | null {
  const parts = paths.targetDir.split("/").filter(Boolean);
  const root = paths.hostDir === paths.targetDir ? "/" : `/proc/${paths.pid}/root`;
  const priv = { uid: paths.uid, privateMode: true };
  try {
    return SafeDir.open(root, [
      { name: parts[0], rule: { uid: null, privateMode: false } },
      { name: parts[1], rule: priv },
      { name: parts[2], rule: priv },
    ]);
  } catch (e) {
    if (e instanceof SysError && e.errno === E.ENOENT) return null;
    throw sessionDirError(e, paths);
  }
}

function sessionDirError(e: unknown, paths: SessionPaths): unknown {
  if (e instanceof UnsafeDirError) {
    return new SessionError(
      "UNSAFE_SESSION_DIR",
      `${e.message}; peeka will not use it for process ${paths.pid} (uid ${paths.uid}). ` +
        `Remove it (as its owner or root) and attach again`,
    );
  }
  if (isNoSpace(e)) return noSpace(paths);
  return e;
}

export function noSpace(paths: SessionPaths): SessionError {
  return new SessionError(
    "NO_SPACE",
    `no space left in /tmp for the session of process ${paths.pid} (${paths.hostDir}); ` +
      `free some space in /tmp and attach again`,
  );
}

/** Removes session directories left by processes that are gone (killed before the agent could clean up). */
function removeStaleSessions(base: SafeDir, uid: number): void {
  for (const name of base.names()) {
    const m = /^(\d+)-(\d+)$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (processExists(pid) && startTime(pid) === Number(m[2])) continue;
    try {
      const dir = base.sub(name, { uid, privateMode: true });
      if (!dir) continue;
      try {
        clearSession(dir);
        dir.removeSelf();
      } finally {
        dir.close();
      }
    } catch { /* not ours to judge (odd owner or mode), or another peeka got there first */ }
  }
}

/** Unlinks every name a session may hold (names only: nothing a link points to). */
export function clearSession(dir: SafeDir, keep: string[] = []): void {
  for (const name of SESSION_FILES) {
    if (!keep.includes(name)) dir.remove(name);
  }
}

export function processGid(pid: number): number {
  const m = /^Gid:\s+(\d+)\s+(\d+)/m.exec(readText(`/proc/${pid}/status`) ?? "");
  return m ? Number(m[2]) : 0;
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
