# peeka agent: runs inside the target CPython process (3.8+), serves diagnostic
# commands over a Unix socket. The CLI writes this file plus one line calling
# _peeka_main(config) to <session_dir>/boot.py; the injector execs it on a
# borrowed thread of the target. Standard library only, 3.8 syntax only.
#
# This file is the server (accept loop, connections, frames, the load/call/cancel/detach
# protocol) and the bootstrap; it is the last part of the agent's one source, which
# agent/embed.ts joins from real.py (the interpreter's own primitives), wire.py (outgoing
# frames and error replies), concurrency.py (hello's report), forking.py (the fork hook)
# and this file, in that order. The parts share one namespace: what they define is used here.
#
# The agent deliberately never imports `threading`: importing it for the first
# time from a non-main thread would make that thread threading.main_thread().
# It never uses a blocking primitive through its module either (see real.py).
import _socket
import _thread
import atexit
import json
import mmap
import os
import select
import stat
import struct
import sys
import time

MAX_PENDING = 10000          # frames waiting to be sent on one connection
SEND_TIMEOUT = 2.0           # a client that does not take a frame within this is dropped
READ_POLL = 2.0              # how often an idle reader looks whether its connection died
READ_CHUNK = 256 * 1024      # most bytes one recv takes (and may take past the frame budget)
SMALL_FRAME = 64 * 1024      # frames up to this size are read into one buffer of their size
PIECE = 1024 * 1024          # bigger ones into mappings of this size, made as bytes arrive
ACCEPT_POLL = 0.2            # how quickly the accept loop notices a stop
LOG_LIMIT = 1024 * 1024      # agent.log stops growing here
DETACH_NOTICE_BUDGET = 1.0   # total time a detach may spend telling streaming clients
EXIT_NOTICE_BUDGET = 0.5     # the same at the target's exit: it must not wait on us
# Defaults of the limits a config may override (tests use small ones).
MAX_CONNECTIONS = 16         # clients served at once; the next one gets TOO_MANY_CONNECTIONS
FRAME_BUDGET = 32 * 1024 * 1024   # bytes of incoming frames held at once, all connections
FRAME_DEADLINE = 10.0        # seconds from a frame's first byte to its last
_SEND_FLAGS = getattr(_socket, "MSG_NOSIGNAL", 0)   # no SIGPIPE if the target reset it
_OPS = ("hello", "load", "call", "cancel", "stats", "detach")


class CommandError(Exception):
    """Raised by snippets for an expected failure; `code` reaches the client."""

    def __init__(self, message, code="COMMAND_ERROR"):
        Exception.__init__(self, message)
        self.code = code


# The library every snippet and library may require by name without loading it: what they
# raise for an expected failure. A module object of our own, never put in sys.modules.
_ERRORS = type(sys)("__peeka_lib_errors__")
_ERRORS.CommandError = CommandError

# The libraries every snippet and library may require by name without loading them.
_BUILT_IN_LIBS = {"errors": _ERRORS, "real": _REAL}


class _BadFrame(Exception):
    """The byte stream is broken or over a limit: the client is told `code`, then the
    connection closes."""

    def __init__(self, message, code="BAD_FRAME"):
        Exception.__init__(self, message)
        self.code = code


class _PeerGone(Exception):
    """The connection ended (reset, shut down by us) while a frame was being read."""


def _quietly(fn, *args):
    """Run a cleanup step that may legitimately fail (already closed, already gone)."""
    try:
        return fn(*args)
    except Exception:
        return None


def _append_log(session_dir, message):
    """Best-effort one-line diagnostic; the target's stdout/stderr are never touched.
    Never through a symlink or into a hard-linked file, and never past LOG_LIMIT."""
    line = "%s pid=%d %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), os.getpid(), message)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = _quietly(os.open, os.path.join(session_dir, "agent.log"), flags, 0o600)
    if fd is None:
        return
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_size < LOG_LIMIT:
            os.write(fd, line.encode("utf-8", "replace"))
    except Exception:
        pass
    finally:
        _REAL.close(fd)


def _private_dir(path):
    """True if path is a real directory (not a symlink) of ours that group and others
    cannot enter, inside a parent where no other user can rename or replace it."""
    try:
        st = os.lstat(path)
        parent = os.lstat(os.path.dirname(os.path.normpath(path)))
    except (OSError, TypeError, ValueError):
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        return False
    if not stat.S_ISDIR(parent.st_mode) or parent.st_uid not in (0, os.geteuid()):
        return False
    # others may write to the parent only if it is sticky (like /tmp): then only we can move our dir
    return not (parent.st_mode & 0o022) or bool(parent.st_mode & stat.S_ISVTX)


def _bind_private(listener, path):
    """Bind the listener at path and make the socket file 0600; returns its inode.

    The session directory is ours and 0700, so nobody else can reach the socket whatever
    its mode: 0600 is defence in depth, and must not be had by following a symlink. Linux
    has no lchmod, fchmod on the socket's descriptor changes the socket's own inode (not
    the file bind() creates), and umask is process-wide state of someone else's program.
    So the new name is opened with O_PATH|O_NOFOLLOW (a symlink put there is opened as
    itself and refused), checked to be a socket of ours, and that very inode is chmodded
    through /proc/self/fd. Without /proc the mode stays as bind left it, still private."""
    listener.bind(path)
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
            raise OSError("%s is not the socket just bound" % path)
        _quietly(os.chmod, "/proc/self/fd/%d" % fd, 0o600)
        return st.st_ino
    finally:
        _REAL.close(fd)


def _source_digest(source):
    """sha256 hex of the source's UTF-8, as the CLI names it (core/protocol.ts sha256)."""
    import hashlib  # lazily: ~5 ms of OpenSSL loading the bootstrap need not pay
    try:
        return hashlib.sha256(source.encode("utf-8")).hexdigest()
    except UnicodeEncodeError:  # lone surrogates: no UTF-8 text, so no CLI source
        return None


def _config_number(config, key, default):
    value = config.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return value
    return default


def _rss_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except Exception:
        pass
    return None


class _Conn(object):
    """One accepted client: owns its socket, serialises sends, tracks its running calls."""

    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.dead = False
        self.calls = {}                      # request id -> _Ctx
        self.charged = 0                     # bytes of the frame being read, in the agent's budget
        self.poller = _REAL.poll()          # the reader waits here: the socket timeout is the senders'
        self.poller.register(sock.fileno(), select.POLLIN)
        self._send_lock = _REAL.allocate_lock()
        self._count_lock = _REAL.allocate_lock()
        self._pending = 0

    def send(self, obj, droppable=False):
        """True if sent, False if the peer is gone, None if dropped (queue full)."""
        data = _frame(obj)
        with self._count_lock:
            if droppable and self._pending >= MAX_PENDING:
                return None
            self._pending += 1
        try:
            with self._send_lock:
                if self.dead:
                    return False
                try:
                    self.sock.sendall(data, _SEND_FLAGS)
                    return True
                except Exception:  # timeout (client stuck), EPIPE, closed socket
                    self.kill()
                    return False
        finally:
            with self._count_lock:
                self._pending -= 1

    def send_last(self, frames, deadline):
        """Send these frames and then nothing more: the connection is about to be closed.
        Gives up at `deadline` (time.monotonic()) so a stuck client cannot hold a detach."""
        if not self._send_lock.acquire(True, max(0.0, min(deadline - time.monotonic(), _thread.TIMEOUT_MAX))):
            return False  # a sendall to a client that does not read: it will be cut off anyway
        try:
            if self.dead:
                return False
            for data in frames:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)  # no other sender while we hold the lock
                self.sock.sendall(data, _SEND_FLAGS)
            return True
        except Exception:
            return False
        finally:
            self.dead = True  # later frames (a call's result) would follow the last word
            self._send_lock.release()

    def kill(self):
        """Mark dead, cancel its calls and wake its reader (which then closes the socket)."""
        self.dead = True
        for ctx in list(self.calls.values()):
            ctx.cancelled.set()
        _quietly(self.sock.shutdown, _socket.SHUT_RDWR)

    def close(self):
        self.kill()
        with self._send_lock:  # never close under a concurrent sendall
            _quietly(self.sock.close)


class _Incoming(object):
    """One incoming frame's body, stored as its bytes arrive, never sized by what was only
    announced. A small frame gets one buffer of its size; a bigger one gets anonymous
    private mappings of PIECE bytes, each made when bytes reach it: the kernel gives them
    pages only as they are written and takes everything back at close(). (malloc would
    keep freed blocks in its arenas: a flood of big frames would leave the target bigger.)"""

    def __init__(self, size):
        self.size = size
        self.got = 0
        self._pieces = []

    def recv_from(self, sock):
        """Receive what fits into the current piece: the number of bytes, 0 at EOF."""
        piece, offset = self._room()
        with memoryview(piece) as view, view[offset:offset + READ_CHUNK] as part:
            n = sock.recv_into(part)
        self.got += n
        return n

    def _room(self):
        if self.size <= SMALL_FRAME:
            if not self._pieces:
                self._pieces.append(bytearray(self.size))
            return self._pieces[0], self.got
        offset = self.got % PIECE
        if len(self._pieces) * PIECE == self.got:
            try:
                self._pieces.append(mmap.mmap(-1, min(PIECE, self.size - self.got), flags=mmap.MAP_PRIVATE))
            except (OSError, ValueError) as e:  # e.g. strict overcommit: no memory for it
                raise _BadFrame("no memory for a frame of %d bytes: %s" % (self.size, _describe(e)), "OVERLOADED")
        return self._pieces[-1], offset

    def take(self):
        """The whole body (call once all of it arrived)."""
        if self.size <= SMALL_FRAME:
            return self._pieces[0]
        return b"".join(self._pieces)

    def close(self):
        for piece in self._pieces:
            if isinstance(piece, mmap.mmap):
                _quietly(piece.close)
        self._pieces = []


class _Ctx(object):
    """What a snippet's run(ctx, args) sees for one call."""

    def __init__(self, agent, conn, rid, args):
        self.agent = agent
        self.args = args
        self.id = rid
        self.libs = {}                       # name -> module of the libraries the call declared
        self.client = {"pid": conn.peer["pid"], "uid": conn.peer["uid"]}
        self.cancelled = _Event()
        self.dropped = 0
        self._conn = conn

    def emit(self, obj):
        frame = dict(obj) if isinstance(obj, dict) else {"data": obj}
        frame["id"] = self.id
        sent = self._conn.send(frame, droppable=True)
        if sent is None:
            self.dropped += 1
            return True
        if not sent:
            self.cancelled.set()
        return sent


class _Agent(object):
    """The agent kept at sys._peeka_agent: listener, connections, snippets, detach hooks."""

    def __init__(self, config):
        self.config = config
        self.session_dir = config["session_dir"]
        self.sock_path = config.get("socket") or os.path.join(self.session_dir, "agent.sock")
        self.pid = os.getpid()
        self.started_at = time.time()
        self.thread_idents = set()
        self.thread_native_ids = set()
        self.real = _REAL                    # the unpatched primitives, for snippets (see real.py)
        self.stopping = False
        self.allowed_uids = set([0, os.geteuid(), os.getuid()])
        self.snippets = {}                   # hash -> run callable
        self.names = {}                      # name -> hash
        self.libs = {}                       # name -> (hash, module): shared code snippets use
        self.dependents = {}                 # library name -> namespaces that REQUIRE it
        self._bound_libs = {}                # call thread ident -> {name: module} it was checked with
        self.state = {}                      # state commands share (e.g. the active watches, for reset)
        self.counts = {"accepted": 0, "refused": 0, "bad_frames": 0, "calls": 0, "errors": 0,
                       "over_limit": 0}
        self.max_connections = int(_config_number(config, "max_connections", MAX_CONNECTIONS))
        self.frame_budget = int(_config_number(config, "frame_budget", FRAME_BUDGET))
        self.frame_deadline = float(_config_number(config, "frame_deadline", FRAME_DEADLINE))
        self.in_flight = 0                   # bytes of partly read (or being handled) frames
        self._conns = set()
        self._detach_cbs = {}                # key -> fn, insertion order = registration order
        self._lock = _REAL.allocate_lock()
        self._ident_lock = _REAL.allocate_lock()
        self._gen = 0                        # bumped to retire the current accept loop
        self._listeners = set()              # listening sockets not closed yet (a fork closes them)
        self._accepting = False
        self._sock_ino = None
        self._can_log = True

    # ---- lifecycle -------------------------------------------------------
    def start(self):
        self._listen()
        atexit.register(self._atexit)
        _hook_fork()

    def ensure_serving(self):
        """Second bootstrap: rebind only if the listener or its socket file is gone."""
        if self.stopping or self._serving():
            return
        self._listen()

    def _serving(self):
        try:
            return self._accepting and os.lstat(self.sock_path).st_ino == self._sock_ino
        except OSError:
            return False

    def _listen(self):
        try:
            os.unlink(self.sock_path)  # stale socket from an earlier session (unlink never follows)
        except FileNotFoundError:
            pass
        listener = _REAL.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            self._sock_ino = _bind_private(listener, self.sock_path)
            listener.listen(16)
            listener.settimeout(ACCEPT_POLL)  # accept() wakes up to notice a stop
        except BaseException:
            listener.close()
            raise
        self._gen += 1
        self._accepting = True
        self._listeners.add(listener)
        self._spawn(self._accept_loop, listener, self._gen)

    def _spawn(self, fn, *args):
        # _thread keeps agent threads out of threading.enumerate(); the lock makes sure the
        # ident is recorded before the thread can remove it again.
        with self._ident_lock:
            self.thread_idents.add(_REAL.start_new_thread(self._thread_main, (fn, args)))

    def _thread_main(self, fn, args):
        native = _REAL.get_native_id()
        self.thread_native_ids.add(native)   # for commands that read /proc/self/task (thread -n)
        try:
            fn(*args)
        except BaseException as e:  # nothing may reach the target's excepthook/stderr
            self.log("agent thread failed: %s" % _describe(e))
        finally:
            self.thread_native_ids.discard(native)
            with self._ident_lock:
                self.thread_idents.discard(_REAL.get_ident())

    def log(self, message):
        if self._can_log:
            _append_log(self.session_dir, message)

    def _bump(self, name):
        with self._lock:
            self.counts[name] += 1

    # ---- accepting -------------------------------------------------------
    def _accept_loop(self, listener, gen):
        try:
            while not self.stopping and gen == self._gen:
                try:
                    sock = _REAL.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, listener._accept()[0])
                except _REAL.timeout:
                    continue
                except OSError as e:
                    if listener.fileno() < 0:
                        break
                    self.log("accept failed: %s" % _describe(e))
                    _REAL.sleep(ACCEPT_POLL)  # e.g. EMFILE: do not spin
                    continue
                try:
                    self._admit(sock)
                except Exception as e:
                    self.log("admit failed: %s" % _describe(e))
                    _quietly(sock.close)
        finally:
            if gen == self._gen:
                self._accepting = False
            self._listeners.discard(listener)
            listener.close()

    def _admit(self, sock):
        sock.settimeout(SEND_TIMEOUT)
        try:
            size = struct.calcsize("3i")
            pid, uid, gid = struct.unpack("3i", sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, size))
        except Exception:
            pid, uid, gid = -1, -1, -1
        if uid not in self.allowed_uids:
            self._bump("refused")
            msg = "peer uid %d is not allowed to use this agent (only root or uid %d)" % (uid, os.geteuid())
            _quietly(sock.sendall, _frame(_notice("PERMISSION_DENIED", msg)), _SEND_FLAGS)
            sock.close()
            return
        conn = _Conn(sock, {"pid": pid, "uid": uid, "gid": gid})
        refusal = self._enrol(conn)  # under the lock: detach closes every enrolled connection
        if refusal is not None:
            _quietly(sock.sendall, _frame(refusal), _SEND_FLAGS)
            sock.close()
            return
        try:
            self._spawn(self._serve, conn)
        except Exception:
            self._drop(conn)

    def _enrol(self, conn):
        """Count conn among the served connections, or return the notice refusing it."""
        with self._lock:
            if self.stopping:
                return _notice("AGENT_STOPPING", "the agent is detaching")
            if len(self._conns) >= self.max_connections:
                self.counts["over_limit"] += 1
                return _notice("TOO_MANY_CONNECTIONS", "the agent already serves %d clients (its limit); "
                               "try again when one has finished" % self.max_connections)
            self._conns.add(conn)
            self.counts["accepted"] += 1
        return None

    def _drop(self, conn):
        conn.close()
        with self._lock:
            self._conns.discard(conn)

    # ---- reading requests ------------------------------------------------
    def _serve(self, conn):
        try:
            while not conn.dead:  # detach and exit kill every connection themselves
                body = None
                try:
                    body = self._read_frame(conn)
                    if body is None:
                        break
                    self._handle(conn, body)
                except _BadFrame as e:
                    self._bump("bad_frames")
                    conn.send(_notice(e.code, str(e)))
                    break
                except _PeerGone:
                    break
                finally:
                    body = None  # dropped before its bytes leave the budget
                    self._uncharge(conn)
        finally:
            self._drop(conn)  # EOF/reset/stop: cancels the connection's calls

    def _read_frame(self, conn):
        """The next frame's body, or None when the peer left between frames. A frame must
        arrive whole within frame_deadline of its first byte (a client trickling a byte a
        second is cut off), and its bytes count against the agent's frame_budget."""
        header = self._recv_some(conn, 4, None)
        if not header:
            return None
        deadline = time.monotonic() + self.frame_deadline
        while len(header) < 4:
            header += self._recv_some(conn, 4 - len(header), deadline, len(header), 4)
        size = struct.unpack(">I", header)[0]
        if size == 0 or size > MAX_FRAME:
            raise _BadFrame("invalid frame length %d (must be 1..%d)" % (size, MAX_FRAME))
        incoming = _Incoming(size)
        try:
            while incoming.got < size:
                self._wait_readable(conn, deadline, incoming.got, size)
                try:
                    n = incoming.recv_from(conn.sock)
                except _REAL.timeout:
                    continue  # cannot happen after poll said readable; just poll again
                except OSError:
                    raise _PeerGone()
                if n == 0:
                    raise _BadFrame("truncated frame: got %d of %d bytes" % (incoming.got, size))
                self._charge(conn, n)
            return incoming.take()
        finally:
            incoming.close()

    def _recv_some(self, conn, limit, deadline, got=0, size=0):
        """1..limit bytes of a header. With no deadline (between frames) waits as long as the
        client stays, and returns b"" at EOF; inside a frame EOF or the deadline is a _BadFrame."""
        while True:
            self._wait_readable(conn, deadline, got, size)
            try:
                data = conn.sock.recv(limit)
            except _REAL.timeout:
                continue  # cannot happen after poll said readable; just poll again
            except OSError:
                raise _PeerGone()  # ECONNRESET etc.: the client is gone
            if not data and deadline is not None:
                raise _BadFrame("truncated frame: got %d of %d bytes" % (got, size))
            return data

    def _wait_readable(self, conn, deadline, got, size):
        while True:
            if conn.dead:
                raise _PeerGone()
            wait = READ_POLL
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise _BadFrame("frame not received within %g s: got %d of %d bytes" % (
                        self.frame_deadline, got, size), "FRAME_TIMEOUT")
            if conn.poller.poll(max(1, int(wait * 1000))):
                return

    def _charge(self, conn, n):
        """Count n more received bytes against the budget shared by every connection."""
        with self._lock:
            if self.in_flight + n > self.frame_budget:
                over = True
            else:
                over = False
                self.in_flight += n
                conn.charged += n
        if over:
            raise _BadFrame("the agent is already receiving %d bytes of frames (its limit is %d); "
                            "send again later" % (self.in_flight, self.frame_budget), "OVERLOADED")

    def _uncharge(self, conn):
        with self._lock:
            self.in_flight -= conn.charged
            conn.charged = 0

    def _handle(self, conn, body):
        try:
            req = json.loads(body.decode("utf-8"))
        except Exception as e:
            self._bump("bad_frames")
            conn.send(_notice("BAD_FRAME", "frame is not valid UTF-8 JSON: %s" % _describe(e)))
            return
        if not isinstance(req, dict):
            self._bump("bad_frames")
            conn.send(_notice("BAD_FRAME", "frame is not a JSON object"))
            return
        rid, op = req.get("id"), req.get("op")
        if op not in _OPS:
            reply = _error(rid, "UNKNOWN_OP", "unknown op %s" % ("'%s'" % op if isinstance(op, str) else op))
        else:
            try:
                reply = getattr(self, "_op_" + op)(conn, rid, req)
            except Exception as e:
                reply = _error(rid, "INTERNAL_ERROR", _describe(e))
        if reply is not None:
            if reply.get("type") == "error":
                self._bump("errors")
            conn.send(reply)

    # ---- ops (each returns the reply, or None when it replies itself) ----
    def _op_hello(self, conn, rid, req):
        with self._lock:
            snippets = dict(self.names)
            libs = dict((name, entry[0]) for name, entry in self.libs.items())
        return {"id": rid, "type": "hello", "pid": os.getpid(), "libs": libs,
                "python_version": "%d.%d.%d" % tuple(sys.version_info[:3]),
                "implementation": sys.implementation.name,
                "agent_version": self.config.get("agent_version"), "started_at": self.started_at,
                "snippets": snippets, "executable": sys.executable,
                "argv": list(getattr(sys, "argv", None) or []), "uid": os.getuid(),
                "token": self.config.get("token"), "concurrency": _concurrency(self.thread_idents)}

    def _op_load(self, conn, rid, req):
        items = req.get("items")
        if items is None:
            return self._load_one(rid, req)
        if not isinstance(items, list):
            return _error(rid, "BAD_REQUEST", "load items must be a list")
        loaded = []
        for item in items:  # in order: a library before the code that uses it
            reply = self._load_one(rid, item if isinstance(item, dict) else {})
            if reply.get("type") == "error":
                return reply
            reply.pop("id", None)
            reply.pop("type", None)
            loaded.append(reply)
        return {"id": rid, "type": "loaded", "items": loaded}

    def _load_one(self, rid, req):
        """One snippet or library (`kind: "lib"`) from a load request."""
        name, digest, source = req.get("name"), req.get("hash"), req.get("source")
        if not (isinstance(name, str) and isinstance(digest, str) and isinstance(source, str)):
            return _error(rid, "BAD_REQUEST", "load needs string fields name, hash and source")
        if _source_digest(source) != digest:
            # code is found by its hash: taking any source under any hash would let one client
            # plant code under the hash of a built-in snippet that another client then runs
            return _error(rid, "HASH_MISMATCH", "the source of '%s' does not have the sha256 %s" % (
                name, digest[:80]))
        if req.get("kind") == "lib":
            return self._load_lib(rid, name, digest, source)
        with self._lock:
            known = digest in self.snippets
            if known:
                self.names[name] = digest
        if not known:
            # CommandError stays a global of snippets: plugins written before `errors` use it
            namespace = {"CommandError": CommandError, "__name__": "__peeka_cmd_" + name + "__"}
            failure = self._execute(rid, name, "<peeka:" + name + ">", source, namespace)
            if failure is not None:
                return failure
            run = namespace.get("run")
            if not callable(run):
                return _error(rid, "LOAD_ERROR", "snippet '%s' does not define run(ctx, args)" % name)
            with self._lock:
                self.snippets[digest] = run
                self.names[name] = digest
        return {"id": rid, "type": "loaded", "name": name, "hash": digest}

    def _load_lib(self, rid, name, digest, source):
        """A library shared by snippets: executed once as a module kept out of sys.modules,
        kept with the hash its source was verified against."""
        with self._lock:
            if self.libs.get(name, (None,))[0] == digest:
                return {"id": rid, "type": "loaded", "name": name, "hash": digest, "kind": "lib"}
        module = type(sys)("__peeka_lib_" + name + "__")
        failure = self._execute(rid, name, "<peeka-lib:" + name + ">", source, module.__dict__)
        if failure is not None:
            return failure
        with self._lock:
            replaced = self.libs.get(name, (None, None))[1]
            if replaced is not None:  # its namespace needs no more updates
                for namespaces in self.dependents.values():
                    namespaces[:] = [n for n in namespaces if n is not vars(replaced)]
            self.libs[name] = (digest, module)
            # code loaded before keeps its source (and hash) but must use this version: else a
            # library whose source did not change would go on with the old one and its state
            for namespace in self.dependents.get(name, ()):
                namespace[name] = module
        return {"id": rid, "type": "loaded", "name": name, "hash": digest, "kind": "lib"}

    def _execute(self, rid, name, filename, source, namespace):
        """Runs a snippet's or library's source in `namespace`, then binds the libraries it
        names in REQUIRES under their names (for its functions: nothing runs them before; the
        built-in ones, errors and real, are there from the start). The client sends those
        libraries first. None when it loaded, else the error reply."""
        # built-in libraries exist before any code: bound first, module-level code may use them
        namespace.update(_BUILT_IN_LIBS)
        try:
            exec(compile(source, filename, "exec"), namespace)
        except BaseException as e:  # also SystemExit: loaded code must not end our thread
            return _error(rid, "LOAD_ERROR", _describe(e), traceback=_format_tb())
        requires = namespace.get("REQUIRES", ())
        if not (isinstance(requires, (tuple, list)) and all(isinstance(r, str) for r in requires)):
            return _error(rid, "LOAD_ERROR", "REQUIRES of '%s' must be a tuple of library names" % name)
        with self._lock:
            unknown = [r for r in requires if r not in _BUILT_IN_LIBS and r not in self.libs]
            namespace.update((r, _BUILT_IN_LIBS[r] if r in _BUILT_IN_LIBS else self.libs[r][1])
                             for r in requires if r not in unknown)
            for r in requires:
                if r not in _BUILT_IN_LIBS and r not in unknown:
                    self.dependents.setdefault(r, []).append(namespace)
        if unknown:
            return _error(rid, "LIB_MISSING", "'%s' requires library '%s', which is not loaded" % (
                name, unknown[0]), lib=unknown[0])
        return None

    def lib(self, name):
        """The loaded library `name` (snippets declare the libs they use; the CLI loads them first).
        In a call's thread, a library the call declared is the very version whose hash the call
        was checked against: another client loading other code under that name meanwhile
        (its own hash, so its load is accepted) does not reach this call."""
        bound = self._bound_libs.get(_REAL.get_ident())
        if bound is not None and name in bound:
            return bound[name]
        if name in _BUILT_IN_LIBS:
            return _BUILT_IN_LIBS[name]
        entry = self.libs.get(name)
        if entry is None:
            raise CommandError("library '%s' is not loaded" % name, code="LIB_MISSING")
        return entry[1]

    def _op_call(self, conn, rid, req):
        command, digest = req.get("command"), req.get("hash")
        if not isinstance(digest, str) or not isinstance(rid, (int, str)):
            return _error(rid, "BAD_REQUEST", "call needs a string hash and an integer or string id")
        libs = req.get("libs") or {}
        with self._lock:
            run = self.snippets.get(digest)
            bound, missing_libs = self._bind_libs(libs if isinstance(libs, dict) else {})
        if run is None or missing_libs:
            return self._missing_error(rid, command, run is None, missing_libs)
        args = req.get("args")
        args = {} if args is None else args
        if not isinstance(args, dict):
            return _error(rid, "BAD_REQUEST", "args must be a JSON object")
        ctx = _Ctx(self, conn, rid, args)
        ctx.libs = bound
        conn.calls[rid] = ctx
        self._bump("calls")
        try:
            self._spawn(self._run_call, conn, ctx, run)  # own thread: the reader stays free for cancel
        except Exception as e:
            conn.calls.pop(rid, None)
            return _error(rid, "INTERNAL_ERROR", "cannot start call thread: %s" % _describe(e))
        return None

    def _bind_libs(self, wanted):
        """The loaded modules of the libraries `wanted` (name -> hash), and the names of those
        not loaded under that hash. Called with the lock held."""
        bound, missing = {}, []
        for lib_name, lib_hash in wanted.items():
            entry = self.libs.get(lib_name)
            if entry is None or entry[0] != lib_hash:
                missing.append(lib_name)
            else:
                bound[lib_name] = entry[1]
        return bound, missing

    @staticmethod
    def _missing_error(rid, command, snippet_missing, missing_libs):
        """Everything a call lacks, in one error: the client loads it all in one request."""
        missing = {"snippet": snippet_missing, "libs": missing_libs}
        if snippet_missing:
            return _error(rid, "SNIPPET_MISSING", "snippet for '%s' not loaded" % command,
                          missing=missing)
        return _error(rid, "LIB_MISSING", "library '%s' not loaded" % missing_libs[0],
                      lib=missing_libs[0], missing=missing)

    def _run_call(self, conn, ctx, run):
        self._bound_libs[_REAL.get_ident()] = ctx.libs
        try:
            data = run(ctx, ctx.args)
            if data is None:
                data = {}
            if not isinstance(data, dict):
                raise TypeError("run() must return a dict or None, not %s" % type(data).__name__)
            reply = {"id": ctx.id, "type": "result", "data": data}
        except CommandError as e:
            reply = _error(ctx.id, e.code, _safe_str(e))
        except BaseException as e:
            reply = _error(ctx.id, "SNIPPET_ERROR", _describe(e), traceback=_format_tb())
        finally:
            self._bound_libs.pop(_REAL.get_ident(), None)
        if conn.calls.get(ctx.id) is ctx:  # finished first: a later cancel reports found=false
            conn.calls.pop(ctx.id, None)
        if reply["type"] == "error":
            self._bump("errors")
        conn.send(reply)

    def _op_cancel(self, conn, rid, req):
        target = req.get("target")
        ctx = conn.calls.get(target) if isinstance(target, (int, str)) else None  # as call ids are
        if ctx is not None:
            ctx.cancelled.set()
        return {"id": rid, "type": "cancelled", "target": target, "found": ctx is not None}

    def _op_stats(self, conn, rid, req):
        with self._lock:
            reply = {"id": rid, "type": "stats", "connections": len(self._conns)}
            reply.update(self.counts)
            reply["in_flight"] = self.in_flight - conn.charged  # not this very request
        reply["limits"] = {"max_connections": self.max_connections, "frame_budget": self.frame_budget,
                           "frame_deadline": self.frame_deadline, "max_frame": MAX_FRAME}
        reply["thread_idents"] = sorted(self.thread_idents)
        reply["rss_kb"] = _rss_kb()
        return reply

    def _op_detach(self, conn, rid, req):
        with self._lock:  # from here no new connection is admitted
            already, self.stopping = self.stopping, True
            callbacks = [] if already else list(self._detach_cbs.items())
            self._detach_cbs.clear()
        restored, errors = self._run_detach_callbacks(callbacks)
        conn.send({"id": rid, "type": "detached", "restored": restored, "errors": errors,
                   "pid": os.getpid()})
        if not already:
            self._tell_running_calls(self._detached_event(conn), DETACH_NOTICE_BUDGET)
            self._shutdown()
        return None

    def _detached_event(self, detacher):
        by = detacher.peer["pid"]
        pid = os.getpid()

        def event(conn, rid):
            if conn is detacher:
                message = "process %d was detached by this client" % pid
            else:
                message = "process %d was detached by another peeka client (pid %d)" % (pid, by)
            return {"id": rid, "type": "event", "event": "agent_detached", "message": message,
                    "by_pid": by, "pid": pid}
        return event

    def _exiting_event(self):
        pid = os.getpid()

        def event(conn, rid):
            return {"id": rid, "type": "event", "event": "target_exiting",
                    "message": "process %d is exiting" % pid, "pid": pid}
        return event

    def _tell_running_calls(self, make_event, budget):
        """Give every running call one last event frame before its connection is closed:
        a streaming client learns why its stream ends. Everything together takes at most
        `budget` seconds, whatever the clients do (one that does not read is skipped)."""
        deadline = time.monotonic() + budget
        with self._lock:
            conns = [conn for conn in self._conns if conn.calls]
        for i, conn in enumerate(conns):
            frames = [_frame(make_event(conn, rid)) for rid in list(conn.calls)]
            # an equal share of what is left: one client that does not read costs only its own
            share = (deadline - time.monotonic()) / (len(conns) - i)
            if share > 0:
                conn.send_last(frames, time.monotonic() + share)

    # ---- detach ----------------------------------------------------------
    def on_detach(self, key, fn):
        with self._lock:
            self._detach_cbs.pop(key, None)  # re-registering makes it the newest
            self._detach_cbs[key] = fn

    def remove_detach(self, key):
        with self._lock:
            return self._detach_cbs.pop(key, None) is not None

    @staticmethod
    def _run_detach_callbacks(callbacks):
        restored, errors = 0, []
        for key, fn in reversed(callbacks):  # newest first, like unwinding
            try:
                fn()
                restored += 1
            except BaseException as e:
                errors.append("%s: %s" % (_safe_str(key), _describe(e)))
        return restored, errors

    def _shutdown(self):
        """Stop everything and leave no trace: threads exit within ~ACCEPT_POLL."""
        self.stopping = True
        self._gen += 1  # the accept loop closes its listener on its next poll
        _quietly(atexit.unregister, self._atexit)
        self._close_all()
        if getattr(sys, "_peeka_agent", None) is self:
            del sys._peeka_agent

    def _close_all(self):
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.kill()  # readers wake up, close their sockets and exit
        self._can_log = False
        self._remove_files()

    def _remove_files(self):
        """Only the names the agent knows; unlink and rmdir never follow a symlink."""
        st = _quietly(os.lstat, self.sock_path)
        if st is not None and st.st_ino == self._sock_ino:  # not a newer agent's socket
            _quietly(os.unlink, self.sock_path)
        for name in ("boot.py", "agent.log", "pep768.py", "pep768.started", "boot.started"):
            _quietly(os.unlink, os.path.join(self.session_dir, name))
        _quietly(os.rmdir, self.session_dir)  # only succeeds when the CLI left nothing else

    # ---- fork -------------------------------------------------------------
    def after_fork_in_child(self):
        """In a child forked from the attached process (the at-fork hook: on the thread that
        forked, the only one the child has; sys._peeka_agent is already gone). The listener,
        the connections and the session directory are the parent's: the child closes its
        copies of the sockets and unlinks nothing; each library undoes what it changed in the
        child's memory (instrument: the watched functions' code; any library or snippet may
        define a module-level after_fork_in_child() for this). A later attach to the child
        starts a new agent with the child's own session. The agent's threads do not exist
        here and may have held its locks at the fork: no lock of the agent is taken.

        The rest is left as the fork copied it, unreferenced but for the atexit entry (which
        does nothing in another pid): freeing it would write to every page it sits on, each
        then copied for the child (copy-on-write) and kept, private, by the child's allocator."""
        self.stopping = True
        self._gen += 1
        self._can_log = False        # agent.log is the parent's
        namespaces = [vars(module) for _, module in list(self.libs.values())]
        namespaces += [getattr(run, "__globals__", {}) for run in list(self.snippets.values())]
        for namespace in namespaces:
            forget = namespace.get("after_fork_in_child")
            if callable(forget):
                _quietly(forget)
        # close, never shutdown: that would end the parent's listener and connections too
        for sock in list(self._listeners) + [conn.sock for conn in list(self._conns)]:
            _quietly(sock.close)     # the child's copy of the descriptor; the parent's stays open

    def _atexit(self):
        if os.getpid() == self.pid:  # a forked child must not delete the parent's session
            with self._lock:
                self.stopping = True
            self._tell_running_calls(self._exiting_event(), EXIT_NOTICE_BUDGET)
            self._close_all()


def _format_tb():
    try:
        import traceback  # lazily: keeps the bootstrap fast
        return traceback.format_exc()
    except Exception:
        return None


class _Starting(object):
    """Placeholder kept at sys._peeka_agent while an agent is being created, so that a
    bootstrap running at the same moment on another thread (PEP 768 may run it on
    several) sees an agent and leaves."""

    stopping = False

    def __init__(self):
        self.pid = os.getpid()

    def ensure_serving(self):
        pass


def _peeka_main(config):
    """Bootstrap entry point: bind, start the server thread, return. Never raises."""
    session_dir = None
    claim = None
    try:
        if not _private_dir(config.get("session_dir")):
            # the CLI made it 0700 for this uid: anything else (missing, a symlink, another
            # owner, open to others) is not ours to write in, not even a log line
            return
        session_dir = config["session_dir"]
        old = getattr(sys, "_peeka_agent", None)
        if old is not None and getattr(old, "pid", None) != os.getpid():
            # inherited through fork(): its threads do not exist here (its atexit hook checks
            # the pid, so it will not delete the parent's session); start afresh
            del sys._peeka_agent
        claim = _Starting()
        # dict.setdefault is atomic under the GIL: exactly one bootstrap gets to create the agent
        old = sys.__dict__.setdefault("_peeka_agent", claim)
        if old is not claim:
            claim = None
            if not getattr(old, "stopping", True):
                old.ensure_serving()
            return  # already running, starting, or detaching right now
        agent = _Agent(config)
        agent.start()
        sys._peeka_agent = agent
        claim = None
    except BaseException as e:
        if session_dir:
            _append_log(session_dir, "bootstrap failed: %s" % _describe(e))
    finally:
        if claim is not None and getattr(sys, "_peeka_agent", None) is claim:
            del sys._peeka_agent
