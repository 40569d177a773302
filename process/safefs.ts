// Files in directories another user controls, handled without trusting a path.
//
// A target owned by user U keeps its session in /tmp/peeka-<U>/<pid>-<start>/, which U owns:
// U can plant symlinks, hard links or files there, or swap a directory for a symlink between
// two of our steps. When peeka runs as root, any path-based open, chmod, chown or remove there
// could be turned against another file. So every step goes through a directory descriptor
// whose inode was checked (real directory, owner, mode): names are resolved one component at a
// time with O_NOFOLLOW, files are created with O_EXCL (a planted name is removed first, which
// only removes the name), modes and owners are set on our own descriptor (fchmod, fchown).
// The same defences as OpenSSH's and systemd-tmpfiles' handling of shared directories.
// Raw system calls through glibc's syscall(): present in every glibc, unlike fstat/openat2.

import { errno, syscall, SysError } from "./libc.ts";

const SYS = {
  write: 1,
  close: 3,
  fstat: 5,
  fchmod: 91,
  fchown: 93,
  flock: 73,
  openat: 257,
  mkdirat: 258,
  newfstatat: 262,
  unlinkat: 263,
} as const;

const O = {
  RDONLY: 0,
  WRONLY: 1,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  NONBLOCK: 0o4000,
  DIRECTORY: 0o200000,
  NOFOLLOW: 0o400000,
  CLOEXEC: 0o2000000,
} as const;
const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_REMOVEDIR = 0x200;
const LOCK_EX = 2, LOCK_NB = 4;

export const E = {
  ENOENT: 2,
  EAGAIN: 11,
  EACCES: 13,
  EEXIST: 17,
  ENOTDIR: 20,
  ENOSPC: 28,
  ENOTEMPTY: 39,
  ELOOP: 40,
  EDQUOT: 122,
} as const;

const S_IFMT = 0o170000, S_IFDIR = 0o040000, S_IFSOCK = 0o140000, S_IFLNK = 0o120000;

export interface FileStat {
  ino: bigint;
  mode: number;
  uid: number;
  gid: number;
  isDirectory: boolean;
  isSocket: boolean;
  isSymlink: boolean;
}

function cstr(text: string): Uint8Array {
  return new TextEncoder().encode(text + "\0");
}

function ptr(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf as BufferSource)));
}

/** One system call; returns its result or throws SysError naming `what`. */
function sys(what: string, nr: number, ...args: (number | bigint)[]): number {
  const r = syscall(nr, ...args);
  if (r < 0) throw new SysError(what, errno());
  return r;
}

function decodeStat(buf: Uint8Array): FileStat {
  const v = new DataView(buf.buffer, buf.byteOffset);
  const mode = v.getUint32(24, true);
  return {
    ino: v.getBigUint64(8, true),
    mode: mode & 0o7777,
    uid: v.getUint32(28, true),
    gid: v.getUint32(32, true),
    isDirectory: (mode & S_IFMT) === S_IFDIR,
    isSocket: (mode & S_IFMT) === S_IFSOCK,
    isSymlink: (mode & S_IFMT) === S_IFLNK,
  };
}

function fstat(fd: number): FileStat {
  const buf = new Uint8Array(144);
  sys("fstat", SYS.fstat, fd, ptr(buf));
  return decodeStat(buf);
}

/** Opens a directory (never through a symlink in its last component). */
function openDirAt(dirFd: number, name: string, follow = false): number {
  const flags = O.RDONLY | O.DIRECTORY | O.CLOEXEC | O.NOCTTY | (follow ? 0 : O.NOFOLLOW);
  return sys(`open ${name}`, SYS.openat, dirFd, ptr(cstr(name)), flags, 0);
}

function closeFd(fd: number): void {
  syscall(SYS.close, fd);
}

/** What a directory must be to hold a session: ours to trust. */
export interface DirRule {
  /** Required owner; null: any (a container's /tmp is owned by its own root). */
  uid: number | null;
  /** Group and others may not write (the session levels: no access at all). */
  privateMode: boolean;
}

export class UnsafeDirError extends Error {
  constructor(readonly path: string, message: string) {
    super(message);
  }
}

/**
 * A directory held open by descriptor: everything below happens relative to the inode that
 * was checked, so renaming or replacing the path afterwards changes nothing for us.
 */
export class SafeDir {
  private constructor(
    readonly fd: number,
    readonly path: string,
    private parentFd: number | null,
    private nameInParent: string,
  ) {}

  /**
   * Opens `root` (followed: "/" or /proc/PID/root, the target's root) and then each component
   * of `below` without following symlinks, checking each against its rule. A missing level
   * whose rule allows it is created (mode 0700, owner `create.uid`:`create.gid`).
   */
  static open(
    root: string,
    below: { name: string; rule: DirRule; create?: { uid: number; gid: number } }[],
  ): SafeDir {
    let fd = sys(
      `open ${root}`,
      SYS.openat,
      AT_FDCWD,
      ptr(cstr(root)),
      O.RDONLY | O.DIRECTORY | O.CLOEXEC,
      0,
    );
    let parent: number | null = null;
    let path = root === "/" ? "" : root;
    let last = "";
    try {
      for (const level of below) {
        path += `/${level.name}`;
        const child = SafeDir.openLevel(fd, path, level.name, level.create);
        SafeDir.check(child, path, level.rule);
        if (parent !== null) closeFd(parent);
        parent = fd;
        fd = child;
        last = level.name;
      }
    } catch (e) {
      closeFd(fd);
      if (parent !== null) closeFd(parent);
      throw e;
    }
    return new SafeDir(fd, path || "/", parent, last);
  }

  private static openLevel(
    dirFd: number,
    path: string,
    name: string,
    create?: { uid: number; gid: number },
  ): number {
    if (create) {
      const r = syscall(SYS.mkdirat, dirFd, ptr(cstr(name)), 0o700);
      const made = r === 0;
      const failure = made ? 0 : errno();
      let fd: number;
      try {
        // opened whatever mkdir said: errno is only read after the call, and the runtime may
        // overwrite it on this thread in between (EAGAIN was once seen from four parallel
        // attaches), so a folder another attach made meanwhile must not fail on it
        fd = SafeDir.openChecked(dirFd, path, name);
      } catch (e) {
        if (!made && failure !== E.EEXIST) throw new SysError(`mkdir ${path}`, failure);
        throw e;
      }
      // Ours alone from mkdir to here (no one else may rename in a sticky /tmp or in U's
      // 0700 directory but U, for whom it is made): hand it to the target's user.
      if (made) {
        sys(`chmod ${path}`, SYS.fchmod, fd, 0o700); // mkdir's mode went through our umask
        if (Deno.uid() === 0) sys(`chown ${path}`, SYS.fchown, fd, create.uid, create.gid);
      }
      return fd;
    }
    return SafeDir.openChecked(dirFd, path, name);
  }

  private static openChecked(dirFd: number, path: string, name: string): number {
    try {
      return openDirAt(dirFd, name);
    } catch (e) {
      if (e instanceof SysError && (e.errno === E.ELOOP || e.errno === E.ENOTDIR)) {
        throw new UnsafeDirError(path, `${path} is not a directory (a symlink or a file)`);
      }
      throw e;
    }
  }

  private static check(fd: number, path: string, rule: DirRule): void {
    const st = fstat(fd);
    let why = "";
    if (!st.isDirectory) why = "is not a directory";
    else if (rule.uid !== null && st.uid !== rule.uid) {
      why = `belongs to uid ${st.uid}, not ${rule.uid}`;
    } else if (rule.privateMode && (st.mode & 0o077) !== 0) {
      why = `has mode ${st.mode.toString(8)}: others may use it`;
    } else if (!rule.privateMode && (st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
      why = `is writable by others and not sticky (mode ${st.mode.toString(8)})`;
    }
    if (why) {
      closeFd(fd);
      throw new UnsafeDirError(path, `${path} ${why}`);
    }
  }

  stat(): FileStat {
    return fstat(this.fd);
  }

  /** A name in this directory, not followed; null when absent. */
  entry(name: string): FileStat | null {
    const buf = new Uint8Array(144);
    const r = syscall(SYS.newfstatat, this.fd, ptr(cstr(name)), ptr(buf), AT_SYMLINK_NOFOLLOW);
    if (r < 0) {
      if (errno() === E.ENOENT) return null;
      throw new SysError(`stat ${this.path}/${name}`, errno());
    }
    return decodeStat(buf);
  }

  /** Names in the directory (through our descriptor's inode, via /proc/self/fd). */
  names(): string[] {
    try {
      return [...Deno.readDirSync(`/proc/self/fd/${this.fd}`)].map((e) => e.name);
    } catch {
      return [];
    }
  }

  /** Still linked at the name we opened it by (a remover may have unlinked it meanwhile). */
  stillLinked(): boolean {
    if (this.parentFd === null) return true;
    const buf = new Uint8Array(144);
    const r = syscall(
      SYS.newfstatat,
      this.parentFd,
      ptr(cstr(this.nameInParent)),
      ptr(buf),
      AT_SYMLINK_NOFOLLOW,
    );
    return r === 0 && decodeStat(buf).ino === this.stat().ino;
  }

  /**
   * Creates `name` afresh with `text`: whatever had the name (a planted symlink, hard link or
   * file) is unlinked first, which removes only the name. O_EXCL|O_NOFOLLOW make the create
   * fail rather than follow anything put there in between; mode and owner are set on our
   * descriptor. A failed write (ENOSPC) removes the partial file.
   */
  createFile(name: string, text: string, mode: number, owner?: { uid: number; gid: number }): void {
    this.remove(name);
    const fd = sys(
      `create ${this.path}/${name}`,
      SYS.openat,
      this.fd,
      ptr(cstr(name)),
      O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.CLOEXEC | O.NOCTTY,
      mode,
    );
    try {
      sys(`chmod ${this.path}/${name}`, SYS.fchmod, fd, mode);
      if (owner && Deno.uid() === 0) {
        sys(`chown ${this.path}/${name}`, SYS.fchown, fd, owner.uid, owner.gid);
      }
      const data = new TextEncoder().encode(text);
      for (let off = 0; off < data.length;) {
        const chunk = data.subarray(off);
        off += sys(`write ${this.path}/${name}`, SYS.write, fd, ptr(chunk), chunk.length);
      }
    } catch (e) {
      closeFd(fd);
      this.remove(name);
      throw e;
    }
    closeFd(fd);
  }

  /** Unlinks a name (never what it points to); false when it was not there. */
  remove(name: string): boolean {
    const r = syscall(SYS.unlinkat, this.fd, ptr(cstr(name)), 0);
    if (r === 0) return true;
    const e = errno();
    if (e === E.ENOENT) return false;
    throw new SysError(`remove ${this.path}/${name}`, e);
  }

  /** Removes this directory from its parent if empty; false when it is not (or gone). */
  removeSelf(): boolean {
    if (this.parentFd === null) return false;
    return syscall(SYS.unlinkat, this.parentFd, ptr(cstr(this.nameInParent)), AT_REMOVEDIR) === 0;
  }

  /** Opens a subdirectory of this one (not followed), checked against `rule`; null when absent. */
  sub(name: string, rule: DirRule): SafeDir | null {
    let fd: number;
    try {
      fd = openDirAt(this.fd, name);
    } catch (e) {
      if (e instanceof SysError && [E.ENOENT, E.ELOOP, E.ENOTDIR].includes(e.errno as 2)) {
        return null;
      }
      throw e;
    }
    const path = `${this.path}/${name}`;
    SafeDir.check(fd, path, rule);
    const parent = sys(
      `dup ${this.path}`,
      SYS.openat,
      this.fd,
      ptr(cstr(".")),
      O.RDONLY | O.DIRECTORY | O.CLOEXEC,
      0,
    );
    return new SafeDir(fd, path, parent, name);
  }

  /**
   * An exclusive advisory lock on this directory, waited for until `deadline`
   * (performance.now() time); the kernel releases it when we close or die.
   */
  async lock(deadline: number): Promise<boolean> {
    for (;;) {
      if (syscall(SYS.flock, this.fd, LOCK_EX | LOCK_NB) === 0) return true;
      if (errno() !== E.EAGAIN) throw new SysError(`lock ${this.path}`, errno());
      if (performance.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  close(): void {
    closeFd(this.fd);
    if (this.parentFd !== null) closeFd(this.parentFd);
    this.parentFd = null;
  }
}

/** True for the errors a full or over-quota file system gives. */
export function isNoSpace(e: unknown): boolean {
  return e instanceof SysError && (e.errno === E.ENOSPC || e.errno === E.EDQUOT);
}
