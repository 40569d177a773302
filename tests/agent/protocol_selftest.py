#!/usr/bin/env python3
"""Private self-test for the agent (agent/*.py, joined as agent/embed.ts joins them) and
commands/thread/snippet.py.

Runs throwaway target processes with the same interpreter as this script, bootstraps
the agent inside them with the injector's exact exec string (no real injector), and
talks to it as a client. Usage:  pythonX.Y tests/agent/protocol_selftest.py [-v]
"""
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
from agent_source import agent_source  # noqa: E402

AGENT_SRC = agent_source()  # agent/*.py joined as the CLI embeds them
THREAD_SRC = open(os.path.join(HERE, "..", "..", "commands", "thread", "snippet.py")).read()
LIB_DIR = os.path.join(HERE, "..", "..", "agent", "lib")
THREADS_LIB = open(os.path.join(LIB_DIR, "threads.py")).read()
VERBOSE = "-v" in sys.argv
# The interpreter for targets: a launcher may be needed (Debian builds run through their own loader).
PYTHON = os.environ.get("PEEKA_SELFTEST_PYTHON", sys.executable)
FAILURES = []
FINAL_TYPES = ("hello", "loaded", "result", "error", "cancelled", "stats", "detached")

BOOTSTRAP = ("try:\n __import__('builtins').exec(compile(open(%r,'rb').read(),%r,'exec'),"
             "{'__name__':'__peeka_boot__'})\nexcept BaseException:\n pass\n")

# Target with threading: main thread blocks in accept(), a worker sleeps in a loop.
# SIGUSR1 -> write a status file; SIGUSR2 -> bootstrap again on the main thread.
TARGET = r'''
import atexit, gc, json, os, signal, socket, sys, threading, time
STATUS, BOOT = os.environ["PEEKA_STATUS"], os.environ["PEEKA_BOOT"]
BOOTSTRAP = os.environ["PEEKA_BOOTSTRAP"]
ticks = [0]
injections = []

def worker_loop():
    while True:
        ticks[0] += 1
        time.sleep(0.05)

def inject(where):
    t0 = time.perf_counter()
    exec(BOOTSTRAP, {})
    injections.append([where, time.perf_counter() - t0])

def write_status(*_):
    frames = sys._current_frames()
    data = {"pid": os.getpid(), "main": threading.main_thread().ident, "worker": worker.ident,
            "worker_native": worker.native_id, "port": port, "ticks": ticks[0],
            "has_agent": hasattr(sys, "_peeka_agent"), "frames": sorted(frames),
            "names": sorted(t.name for t in threading.enumerate()),
            "dummies": sum(isinstance(t, threading._DummyThread) for t in threading.enumerate()),
            "agent_objects": agent_objects(), "injections": injections}
    with open(STATUS + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(STATUS + ".tmp", STATUS)

def agent_objects():
    # the atexit hook, thread namespaces etc. would keep agent objects alive after detach
    gc.collect()
    return sorted(type(o).__name__ for o in gc.get_objects()
                  if type(o).__name__ in ("_Agent", "_Conn", "_Ctx", "_Event"))

def boot_later():
    time.sleep(0.5)
    inject("thread")
    write_status()

signal.signal(signal.SIGUSR1, write_status)
signal.signal(signal.SIGUSR2, lambda *a: inject("main-signal"))
worker = threading.Thread(target=worker_loop, name="peeka-test-worker", daemon=True)
worker.start()
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
port = srv.getsockname()[1]
threading.Thread(target=boot_later, name="peeka-test-booter").start()
conn, _ = srv.accept()
conn.close()
'''

# Target without threading: bootstraps on its main thread (like a pending call).
TARGET_NO_THREADING = r'''
import json, os, sys, time
STATUS, STOP = os.environ["PEEKA_STATUS"], os.environ["PEEKA_STOP"]
baseline = "threading" in sys.modules  # some builds import it at startup (site hooks)
exec(os.environ["PEEKA_BOOTSTRAP"], {})
def status():
    with open(STATUS + ".tmp", "w") as f:
        json.dump({"threading": "threading" in sys.modules, "baseline": baseline, "has_agent": hasattr(sys, "_peeka_agent"),
                   "frames": len(sys._current_frames())}, f)
    os.replace(STATUS + ".tmp", STATUS)
status()
while not os.path.exists(STOP):
    time.sleep(0.05)
time.sleep(0.6)
status()
'''

STREAM_SRC = r'''
def run(ctx, args):
    n = 0
    while not ctx.cancelled.is_set() and n < args.get("limit", 10 ** 9):
        if not ctx.emit({"type": "tick", "n": n, "nan": float("nan"), "obj": object(),
                         "pad": "x" * args.get("pad", 0)}):
            break
        n += 1
        ctx.cancelled.wait(args.get("interval", 0.01))
    if args.get("mark"):
        with open(args["mark"], "w") as f:
            f.write(str(n))
    return {"ticks": n, "cancelled": ctx.cancelled.is_set()}
'''

DETACH_SRC = r'''
def run(ctx, args):
    def write(text):
        with open(args["mark"], "a") as f:
            f.write(text)
    def bad():
        raise RuntimeError("bad restore")
    ctx.agent.on_detach("a", lambda: write("replaced\n"))
    ctx.agent.on_detach("b", bad)
    ctx.agent.on_detach("a", lambda: write("restored\n"))
    ctx.agent.on_detach("c", lambda: write("removed\n"))
    ctx.agent.remove_detach("c")
    return {"idents": sorted(ctx.agent.thread_idents), "client": ctx.client,
            "started_at": ctx.agent.started_at, "token": ctx.agent.config.get("token"),
            "args_same": ctx.args is args}
'''

EVIL_SRC = "import os\ndef run(ctx, args):\n    return {'planted': os.getpid()}\n"
RAISE_SRC = "def run(ctx, args):\n    raise ValueError('boom')\n"
CMDERR_SRC = "def run(ctx, args):\n    raise CommandError('nope', code='NOPE')\n"
EXIT_SRC = "import sys\ndef run(ctx, args):\n    sys.exit(3)\n"
NONDICT_SRC = "def run(ctx, args):\n    return 5\n"
NAN_SRC = "def run(ctx, args):\n    return {'x': float('inf'), 'y': {1: object()}, 'z': float('-inf')}\n"


def check(cond, what, detail=None):
    if cond:
        if VERBOSE:
            print("  ok   %s" % what)
    else:
        FAILURES.append(what)
        print("  FAIL %s %s" % (what, "" if detail is None else repr(detail)[:600]))


def wait_for(pred, timeout=5.0, step=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def is_socket(path):
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def sha(src):
    return hashlib.sha256(src.encode()).hexdigest()


class Client(object):
    """Minimal wire-protocol client, like the TypeScript side."""
    _next = [100]

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)
        self.stream = []

    def send(self, obj):
        data = json.dumps(obj).encode()
        self.s.sendall(struct.pack(">I", len(data)) + data)

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def recv(self):
        head = self._exact(4)
        if head is None:
            return None
        body = self._exact(struct.unpack(">I", head)[0])
        return None if body is None else json.loads(body.decode())

    def eof(self):
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True

    def request(self, op, **fields):
        rid = fields.pop("id", None)
        if rid is None:
            Client._next[0] += 1
            rid = Client._next[0]
        fields.update(id=rid, op=op)
        self.send(fields)
        return self.wait_reply(rid)

    def wait_reply(self, rid):
        while True:
            msg = self.recv()
            if msg is None or (msg.get("id") == rid and msg.get("type") in FINAL_TYPES):
                return msg
            self.stream.append(msg)

    def call(self, name, src, args=None, **kw):
        """Like the CLI: call by hash; on SNIPPET_MISSING load the snippet, on LIB_MISSING (of
        the call or of the snippet's load) the library named, then retry."""
        for _ in range(6):
            reply = self.request("call", command=name, hash=sha(src), args=args or {}, **kw)
            if reply.get("code") == "SNIPPET_MISSING":
                loaded = self.request("load", name=name, hash=sha(src), source=src)
                if loaded.get("code") == "LIB_MISSING":
                    loaded = self.load_lib(loaded["lib"])
            elif reply.get("code") == "LIB_MISSING":
                loaded = self.load_lib(reply.get("lib") or "threads")
            else:
                return reply
            if loaded.get("type") != "loaded":
                return loaded
        return reply

    def load_lib(self, name, depth=0):
        """Loads agent/lib/<name>.py after any library it requires that the agent lacks (named
        by the agent's LIB_MISSING), as the CLI sends a library's requirements before it."""
        with open(os.path.join(LIB_DIR, name + ".py")) as f:
            src = f.read()
        loaded = self.request("load", kind="lib", name=name, hash=sha(src), source=src)
        if loaded.get("code") == "LIB_MISSING" and depth < 5:
            required = self.load_lib(loaded["lib"], depth + 1)
            return self.load_lib(name, depth + 1) if required.get("type") == "loaded" else required
        return loaded

    def close(self):
        self.s.close()


# Short enough that the trickle tests take little time, long enough for a 16 MiB frame on a
# loaded machine (it takes tens of ms).
FRAME_DEADLINE = 1.5


class Target(object):
    def __init__(self, script, extra_env=None, config=None):
        self.tmp = tempfile.mkdtemp(prefix="peeka-selftest-")
        self.config = dict({"frame_deadline": FRAME_DEADLINE}, **(config or {}))
        self.session = os.path.join(self.tmp, "session")
        self.sock = os.path.join(self.session, "agent.sock")
        self.status_path = os.path.join(self.tmp, "status.json")
        self.make_session()
        env = dict(os.environ, PEEKA_STATUS=self.status_path, PEEKA_BOOT=self.boot,
                   PEEKA_BOOTSTRAP=BOOTSTRAP % (self.boot, self.boot), **(extra_env or {}))
        script_path = os.path.join(self.tmp, "target.py")
        with open(script_path, "w") as f:
            f.write(script)
        self.out = open(os.path.join(self.tmp, "out.txt"), "w+")
        self.err = open(os.path.join(self.tmp, "err.txt"), "w+")
        self.proc = subprocess.Popen([PYTHON, script_path], env=env,
                                     stdout=self.out, stderr=self.err)

    def make_session(self):
        os.mkdir(self.session, 0o700)
        # a link where the socket goes: the agent must replace it, never chmod what it points to
        self.victim = os.path.join(self.tmp, "victim")
        with open(self.victim, "w") as f:
            f.write("precious\n")
        os.chmod(self.victim, 0o644)
        os.symlink(self.victim, self.sock)
        self.boot = os.path.join(self.session, "boot.py")
        config = dict(self.config, session_dir=self.session, socket=self.sock, uid=os.getuid(),
                      pid=0, token="feedface", agent_version="0.1.0")
        with open(self.boot, "w") as f:
            f.write(AGENT_SRC + "\n_peeka_main(%s)\n" % json.dumps(config))

    def status(self, signal_first=True):
        if signal_first:
            if os.path.exists(self.status_path):
                os.unlink(self.status_path)
            self.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: os.path.exists(self.status_path))
        with open(self.status_path) as f:
            return json.load(f)

    def output(self):
        self.out.seek(0)
        self.err.seek(0)
        return self.out.read() + self.err.read()

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def test_basics(t, st):
    c = Client(t.sock)
    hello = c.request("hello")
    check(hello["type"] == "hello" and hello["pid"] == t.proc.pid, "hello pid", hello)
    check(hello["python_version"] == "%d.%d.%d" % sys.version_info[:3], "hello python_version", hello)
    check(hello["implementation"] == "cpython" and hello["token"] == "feedface"
          and hello["agent_version"] == "0.1.0" and hello["executable"] == sys.executable
          and hello["uid"] == os.getuid() and isinstance(hello["started_at"], float)
          and hello["argv"][0].endswith("target.py"), "hello fields", hello)
    test_hash_planting(c)
    missing = c.request("call", command="thread", hash=sha(THREAD_SRC), args={})
    check(missing["type"] == "error" and missing["code"] == "SNIPPET_MISSING"
          and missing["error"] == "snippet for 'thread' not loaded", "SNIPPET_MISSING", missing)
    early = c.request("load", name="thread", hash=sha(THREAD_SRC), source=THREAD_SRC)
    check(early.get("code") == "LIB_MISSING" and early.get("lib") == "reflect",
          "a snippet loaded before a library it requires: LIB_MISSING naming it", early)
    check(c.load_lib("reflect")["type"] == "loaded", "the required library loaded first, as the CLI does")
    loaded = c.request("load", name="thread", hash=sha(THREAD_SRC), source=THREAD_SRC)
    check(loaded == {"id": loaded["id"], "type": "loaded", "name": "thread", "hash": sha(THREAD_SRC)},
          "load reply", loaded)
    again = c.request("load", name="thread", hash=sha(THREAD_SRC), source=THREAD_SRC)
    check(again["type"] == "loaded", "reloading a known hash is a no-op", again)
    planted = c.request("load", name="thread", hash=sha(THREAD_SRC), source=EVIL_SRC)
    check(planted["type"] == "error" and planted["code"] == "HASH_MISMATCH", "other source under a known hash refused",
          planted)
    check(c.request("hello")["snippets"] == {"thread": sha(THREAD_SRC)}, "hello lists snippets")

    no_lib = c.request("call", command="thread", hash=sha(THREAD_SRC), args={})
    check(no_lib["type"] == "error" and no_lib["code"] == "LIB_MISSING", "a library not sent yet: LIB_MISSING", no_lib)
    res = c.call("thread", THREAD_SRC)
    check(res["type"] == "result", "thread result", res)
    threads = dict((th["ident"], th) for th in res["data"]["threads"])
    check(res["data"]["count"] == len(threads), "thread count field")
    check(set(threads) == {st["main"], st["worker"]}, "only main+worker visible (agent hidden)",
          sorted(threads))
    main, worker = threads.get(st["main"], {}), threads.get(st["worker"], {})
    check(main.get("is_main") and main.get("name") == "MainThread" and main.get("state") == "WAITING"
          and main["stack"][0]["function"] == "<module>" and main["stack"][-1]["function"] == "accept",
          "main thread entry", main)
    check(worker.get("name") == "peeka-test-worker" and worker.get("daemon") is True
          and worker.get("alive") is True and worker.get("native_id") == st["worker_native"]
          and not worker.get("is_main") and worker.get("state") == "TIMED_WAITING", "worker entry", worker)
    wstack = worker.get("stack", [])
    check(any(f["function"] == "worker_loop" and f["code"] == "time.sleep(0.05)" for f in wstack)
          and wstack[0]["function"] == "_bootstrap", "worker stack outermost first with code", wstack)
    one = c.call("thread", THREAD_SRC, {"tid": st["worker"], "depth": 1})
    check(one["data"]["count"] == 1 and len(one["data"]["threads"][0]["stack"]) == 1
          and one["data"]["threads"][0]["stack"][0]["function"] == "worker_loop", "tid + depth", one)
    nf = c.call("thread", THREAD_SRC, {"tid": 12345})
    check(nf["type"] == "error" and nf["code"] == "THREAD_NOT_FOUND"
          and nf["error"] == "no thread with ident 12345", "THREAD_NOT_FOUND", nf)
    bad = c.call("thread", THREAD_SRC, {"depth": "x"})
    check(bad["type"] == "error" and bad["code"] == "BAD_ARGS", "bad depth arg", bad)

    err = c.call("raise", RAISE_SRC)
    check(err["type"] == "error" and err["code"] == "SNIPPET_ERROR" and err["error"] == "ValueError: boom"
          and "Traceback" in err.get("traceback", ""), "raising snippet -> SNIPPET_ERROR", err)
    ce = c.call("cmderr", CMDERR_SRC)
    check(ce == {"id": ce["id"], "type": "error", "code": "NOPE", "error": "nope"}, "CommandError", ce)
    ex = c.call("exit", EXIT_SRC)
    check(ex["type"] == "error" and ex["code"] == "SNIPPET_ERROR", "sys.exit in snippet", ex)
    nd = c.call("nondict", NONDICT_SRC)
    check(nd["type"] == "error" and "must return a dict" in nd["error"], "non-dict result", nd)
    nan = c.call("nan", NAN_SRC)
    check(nan["type"] == "result" and nan["data"]["x"] == "Infinity" and nan["data"]["z"] == "-Infinity"
          and nan["data"]["y"]["1"].startswith("<object"), "non-finite/non-JSON values", nan)
    syn = c.request("load", name="syn", hash=sha("def run(:\n"), source="def run(:\n")
    check(syn["type"] == "error" and syn["code"] == "LOAD_ERROR" and "SyntaxError" in syn["error"],
          "syntax error on load", syn)
    norun = c.request("load", name="norun", hash=sha("x = 1\n"), source="x = 1\n")
    check(norun["type"] == "error" and norun["code"] == "LOAD_ERROR", "load without run()", norun)
    check(t.proc.poll() is None, "target survives failing snippets")
    return c


def test_hash_planting(c):
    """Code is found by its hash, so a load must prove it: else one client could plant code
    under the hash of a built-in snippet (or library) that another client then runs."""
    for kind, name, src in (("snippet", "thread", THREAD_SRC), ("lib", "threads", THREADS_LIB)):
        fields = {"kind": "lib"} if kind == "lib" else {}
        bad = c.request("load", name=name, hash=sha(src), source=EVIL_SRC, **fields)
        check(bad.get("type") == "error" and bad.get("code") == "HASH_MISMATCH" and sha(src) in bad.get("error", ""),
              "%s planted under another source's hash: HASH_MISMATCH" % kind, bad)
    upper = c.request("load", name="thread", hash=sha(THREAD_SRC).upper(), source=THREAD_SRC)
    check(upper.get("code") == "HASH_MISMATCH", "hash is the lowercase hex the CLI sends", upper)
    lone = c.request("load", name="x", hash=sha("x"), source="\ud800")
    check(lone.get("code") == "HASH_MISMATCH", "source that is not UTF-8 text refused", lone)
    check(c.request("hello")["snippets"] == {}, "nothing planted")


LIB_V1, LIB_V2 = "VERSION = 1\n", "VERSION = 2\n"
LIBUSER_SRC = r'''
def run(ctx, args):
    ctx.emit({"type": "ready"})
    ctx.cancelled.wait(10)
    return {"version": ctx.agent.lib("x").VERSION}
'''


def test_lib_binding(t):
    """A call uses the library versions it was checked against, even if another client
    loads other code under the same name while it runs."""
    a, b = Client(t.sock), Client(t.sock)
    check(a.request("load", kind="lib", name="x", hash=sha(LIB_V1), source=LIB_V1)["type"] == "loaded"
          and a.request("load", name="libuser", hash=sha(LIBUSER_SRC), source=LIBUSER_SRC)["type"] == "loaded",
          "lib and snippet loaded")
    a.send({"id": 1, "op": "call", "command": "libuser", "hash": sha(LIBUSER_SRC), "args": {},
            "libs": {"x": sha(LIB_V1)}})
    ready = a.recv()
    other = b.request("load", kind="lib", name="x", hash=sha(LIB_V2), source=LIB_V2)
    a.send({"id": 2, "op": "cancel", "target": 1})
    result = a.wait_reply(1)
    check(ready.get("type") == "ready" and other["type"] == "loaded" and result.get("data") == {"version": 1},
          "a running call keeps the library version it was checked with", (ready, other, result))
    stale = b.request("call", command="libuser", hash=sha(LIBUSER_SRC), args={}, libs={"x": sha(LIB_V1)})
    check(stale.get("code") == "LIB_MISSING", "a call asking for the replaced version: LIB_MISSING", stale)
    test_required_library_replaced(b)
    a.close()
    b.close()


USES_X = 'REQUIRES = ("x",)\ndef version():\n    return x.VERSION\n'
USES_USES_X = 'REQUIRES = ("errors", "usesx")\ndef run(ctx, args):\n    return {"version": usesx.version()}\n'


def test_required_library_replaced(c):
    """A library whose source did not change uses a library it requires in its newest version
    (a newer CLI sends a changed `x` but the same `usesx`): nothing keeps the old one."""
    for name, src in (("x", LIB_V1), ("usesx", USES_X)):
        check(c.request("load", kind="lib", name=name, hash=sha(src), source=src)["type"] == "loaded",
              "load " + name)
    check(c.request("load", name="usesusesx", hash=sha(USES_USES_X), source=USES_USES_X)["type"] == "loaded",
          "load the snippet")
    versions = []
    for lib_src in (LIB_V1, LIB_V2):
        check(c.request("load", kind="lib", name="x", hash=sha(lib_src), source=lib_src)["type"] == "loaded",
              "load x")
        libs = {"x": sha(lib_src), "usesx": sha(USES_X)}
        reply = c.request("call", command="usesusesx", hash=sha(USES_USES_X), args={}, libs=libs)
        versions.append((reply.get("data") or {}).get("version"))
    check(versions == [1, 2], "a required library replaced: its users see the new version", versions)


def test_streaming_and_clients(t, st):
    a, b = Client(t.sock), Client(t.sock)
    a.send({"id": 1, "op": "call", "command": "stream", "hash": sha(STREAM_SRC), "args": {}})
    first = a.recv()
    if first.get("code") == "SNIPPET_MISSING":
        check(a.request("load", name="stream", hash=sha(STREAM_SRC), source=STREAM_SRC)["type"] == "loaded",
              "load stream")
        a.send({"id": 1, "op": "call", "command": "stream", "hash": sha(STREAM_SRC), "args": {}})
        first = a.recv()
    ticks = [first] + [a.recv() for _ in range(5)]
    check(all(m["id"] == 1 and m["type"] == "tick" for m in ticks), "emit frames carry the id", ticks[:2])
    check(ticks[0]["nan"] == "NaN" and ticks[0]["obj"].startswith("<object"), "emit encodes NaN/objects",
          ticks[0])
    # b works while a streams
    check(b.request("hello")["type"] == "hello", "second client hello during stream")
    res = b.call("thread", THREAD_SRC)
    check(res["type"] == "result" and {th["ident"] for th in res["data"]["threads"]} == {st["main"], st["worker"]},
          "second client thread call during stream (agent call threads hidden)", res.get("data", {}).get("count"))
    stats = b.request("stats")
    check(stats["connections"] >= 2 and stats["calls"] >= 2 and len(stats["thread_idents"]) >= 4
          and isinstance(stats["rss_kb"], int) and stats["rss_kb"] > 0, "stats", stats)
    nf = b.request("cancel", target=1)
    check(nf["type"] == "cancelled" and nf["found"] is False, "cancel on another connection is not found", nf)
    cancel = a.request("cancel", id=2, target=1)
    check(cancel == {"id": 2, "type": "cancelled", "target": 1, "found": True}, "cancel reply", cancel)
    result = a.wait_reply(1)
    check(result["type"] == "result" and result["data"]["cancelled"] is True and result["data"]["ticks"] >= 6,
          "streaming call ends after cancel", result)
    check(a.request("cancel", target=1)["found"] is False, "cancel after completion not found")

    # disconnect cancels running calls: plain close, then SIGKILLed client process
    mark = os.path.join(t.tmp, "mark-close")
    c = Client(t.sock)
    c.send({"id": 5, "op": "call", "command": "stream", "hash": sha(STREAM_SRC), "args": {"mark": mark}})
    c.recv()
    c.close()
    check(wait_for(lambda: os.path.exists(mark), 1.0), "client close cancels its call promptly")
    mark2 = os.path.join(t.tmp, "mark-kill")
    code = ("import json,socket,struct,sys,time\ns=socket.socket(socket.AF_UNIX)\ns.connect(%r)\n"
            "d=json.dumps({'id':1,'op':'call','command':'stream','hash':%r,'args':{'mark':%r}}).encode()\n"
            "s.sendall(struct.pack('>I',len(d))+d)\ns.recv(4)\nprint('go',flush=True)\ntime.sleep(60)\n"
            % (t.sock, sha(STREAM_SRC), mark2))
    p = subprocess.Popen([PYTHON, "-c", code], stdout=subprocess.PIPE)
    p.stdout.readline()
    p.kill()
    p.wait()
    p.stdout.close()
    check(wait_for(lambda: os.path.exists(mark2), 1.0), "SIGKILLed client cancels its call promptly")
    mark3 = os.path.join(t.tmp, "mark-stuck")
    stuck = Client(t.sock)  # never reads: sends time out after 2 s, the call gets cancelled
    stuck.send({"id": 6, "op": "call", "command": "stream", "hash": sha(STREAM_SRC),
                "args": {"mark": mark3, "interval": 0, "pad": 65536}})
    check(wait_for(lambda: os.path.exists(mark3), 5.0), "client that stops reading is dropped")
    check(b.request("hello")["type"] == "hello", "agent still serving after a stuck client")
    stuck.close()
    a.close()
    return b


def send_raw(path, data, shut=False):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    c = Client.__new__(Client)
    c.s, c.stream = s, []
    return c


def test_malformed(t):
    for label, data, shut in [("zero length", struct.pack(">I", 0), False),
                              ("oversize length", struct.pack(">I", 16 * 1024 * 1024 + 1) + b"{}", False),
                              ("truncated frame", struct.pack(">I", 100) + b'{"id":1', True),
                              ("truncated header", b"\x00\x00", True)]:
        c = send_raw(t.sock, data, shut)
        msg = c.recv()
        check(msg is not None and msg.get("type") == "error" and msg.get("code") == "BAD_FRAME"
              and "id" not in msg, "%s -> BAD_FRAME" % label, msg)
        check(c.eof(), "%s -> connection closed" % label)
        c.close()
    c = Client(t.sock)
    for label, body in [("bad json", b"{nope"), ("bad utf-8", b"\xff\xfe{}"), ("not an object", b"[1,2]")]:
        c.s.sendall(struct.pack(">I", len(body)) + body)
        msg = c.recv()
        check(msg.get("code") == "BAD_FRAME" and "id" not in msg, "%s -> BAD_FRAME" % label, msg)
    unk = c.request("nope", id=7)
    check(unk == {"id": 7, "type": "error", "code": "UNKNOWN_OP", "error": "unknown op 'nope'"}, "unknown op", unk)
    c.send({"id": 8})
    noop = c.recv()
    check(noop["id"] == 8 and noop["code"] == "UNKNOWN_OP", "missing op", noop)
    big = {"id": 9, "op": "hello", "pad": ""}
    big["pad"] = "x" * (16 * 1024 * 1024 - len(json.dumps(big)))
    data = json.dumps(big).encode()
    c.s.sendall(struct.pack(">I", len(data)) + data)
    check(c.wait_reply(9)["type"] == "hello" and len(data) == 16 * 1024 * 1024,
          "exactly 16 MiB frame accepted, connection still serving")
    stats = c.request("stats")
    check(stats["bad_frames"] == 7, "bad frames counted", stats["bad_frames"])
    c.close()


MIB = 1024 * 1024


def wrap(sock):
    c = Client.__new__(Client)
    c.s, c.stream = sock, []
    return c


def raw_connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)  # blocking: with a timeout, a full backlog is EAGAIN at once, not a wait
    s.settimeout(10)
    return s


def notice_and_eof(sock):
    """The error notice the agent sent before closing, and whether it did close."""
    c = wrap(sock)
    try:
        msg = c.recv()
        return msg, c.eof()
    except OSError as e:
        return {"oserror": str(e)}, True


def test_limits(t, held):
    """A flood of clients announcing 16 MiB frames and trickling them: the target's memory
    stays bounded (frames grow with what arrives, within a budget for all connections),
    clients past the cap are refused, and a trickling client is cut off at its deadline.
    `held`: connections the caller keeps open (those it just closed may still count)."""
    c = Client(t.sock)
    check(wait_for(lambda: c.request("stats")["connections"] == held + 1, 3.0), "earlier clients gone")
    before = c.request("stats")
    limits = before["limits"]
    check(limits == {"max_connections": 16, "frame_budget": 32 * MIB, "frame_deadline": FRAME_DEADLINE,
                     "max_frame": 16 * MIB}, "limits: defaults, and the deadline from the config", limits)
    free = limits["max_connections"] - before["connections"]
    flood = []
    for _ in range(50):
        s = raw_connect(t.sock)
        try:
            s.sendall(struct.pack(">I", 16 * MIB) + b"{")
        except OSError:
            pass  # past the cap the agent may have refused and closed it already: its notice waits
        flood.append((s, time.time()))
    admitted, refused = flood[:free], flood[free:]
    answers = [notice_and_eof(s) for s, _ in refused]
    check(all(m.get("code") == "TOO_MANY_CONNECTIONS" and "id" not in m and eof for m, eof in answers),
          "clients past the cap get TOO_MANY_CONNECTIONS and are closed", answers[:2])
    during = c.request("stats")
    check(during["connections"] == limits["max_connections"] and during["over_limit"] == len(refused),
          "connections capped, refusals counted", during)
    for s, _ in admitted:  # together well over the budget
        try:
            s.sendall(b"x" * (3 * MIB))
        except OSError:
            pass  # cut off as OVERLOADED mid-send
    during = c.request("stats")
    grown = (during["rss_kb"] - before["rss_kb"]) / 1024.0
    print("  flood: %d clients held %.1f MiB in frames; target grew by %.1f MiB"
          % (len(admitted), during["in_flight"] / float(MIB), grown))
    check(during["in_flight"] <= limits["frame_budget"], "bytes in flight within the budget", during["in_flight"])
    # the budget is 32 MiB: growth past 64 MiB means frames are held beyond it (was 16 MiB per client)
    check(grown < 64, "target memory bounded during the flood", grown)
    outcomes = trickle_until_closed(admitted)
    codes = sorted(set(code for code, _ in outcomes))
    check(len(outcomes) == len(admitted) and codes == ["FRAME_TIMEOUT", "OVERLOADED"],
          "past the budget: OVERLOADED; the rest: FRAME_TIMEOUT", outcomes)
    late = [elapsed for code, elapsed in outcomes if code == "FRAME_TIMEOUT"]
    # a trickling client must be cut at its deadline; the slack only absorbs a loaded machine
    check(late and min(late) >= FRAME_DEADLINE - 0.1 and max(late) < FRAME_DEADLINE + 2.5,
          "a client trickling a byte every 0.2 s is cut off at the frame deadline", late)
    for s, _ in flood:
        s.close()
    check(wait_for(lambda: c.request("stats")["connections"] == before["connections"], 3.0),
          "every flood connection gone")
    after = c.request("stats")
    left = (after["rss_kb"] - before["rss_kb"]) / 1024.0
    print("  after the flood the target is %.1f MiB above its start" % left)
    check(after["in_flight"] == 0, "budget released", after["in_flight"])
    check(left < 16, "memory given back after the flood", left)
    again = Client(t.sock)
    check(again.request("hello")["type"] == "hello", "a new client is served after the flood")
    again.close()
    c.close()


def trickle_until_closed(socks):
    """Each client sends one more byte every 0.2 s until the agent closes it; returns the
    (code, seconds since its header) each one got."""
    live = dict((s.fileno(), (s, start)) for s, start in socks)
    outcomes = []
    stop = time.time() + FRAME_DEADLINE + 5
    while live and time.time() < stop:
        readable = select.select([s for s, _ in live.values()], [], [], 0.2)[0]
        for s in readable:
            _, start = live.pop(s.fileno())
            msg, _ = notice_and_eof(s)
            outcomes.append((msg.get("code"), round(time.time() - start, 2)))
        for s, _ in live.values():
            try:
                s.send(b"x")
            except OSError:
                pass  # closed: its notice is read on the next round
    return outcomes


def test_peer_check(t):
    if os.getuid() != 0:
        print("  skip peer uid check (needs root to switch uid)")
        return
    os.chmod(t.tmp, 0o711)
    os.chmod(t.session, 0o711)
    os.chmod(t.sock, 0o666)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
            c = Client(t.sock)
            os.write(w, json.dumps(c.recv()).encode() + b"\n" + (b"eof" if c.eof() else b"open"))
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    out = os.read(r, 65536).decode().split("\n")
    os.close(r)
    os.chmod(t.tmp, 0o700)
    os.chmod(t.session, 0o700)
    os.chmod(t.sock, 0o600)
    msg = json.loads(out[0]) if out[0] else None
    check(msg == {"type": "error", "code": "PERMISSION_DENIED",
                  "error": "peer uid 65534 is not allowed to use this agent (only root or uid 0)"}
          and out[1] == "eof", "foreign uid refused", out)


def test_reinject(t, st, keep):
    c = Client(t.sock)
    before = c.request("stats")
    started = c.request("hello")["started_at"]
    t.proc.send_signal(signal.SIGUSR2)  # second bootstrap, on the main thread this time
    time.sleep(0.3)
    after = Client(t.sock)
    check(after.request("hello")["started_at"] == started, "second bootstrap keeps the running agent")
    check(keep.request("hello")["type"] == "hello", "existing connection survives second bootstrap")
    check(len(after.request("stats")["thread_idents"]) == len(before["thread_idents"]) + 1,
          "second bootstrap starts no extra server thread")
    os.unlink(t.sock)
    t.proc.send_signal(signal.SIGUSR2)  # socket file lost: a bootstrap must rebind
    check(wait_for(lambda: is_socket(t.sock), 2.0), "rebind after socket file was removed")
    time.sleep(0.5)  # retired accept loop exits
    again = Client(t.sock)
    check(again.request("hello")["started_at"] == started, "rebound agent is the same agent")
    check(len(again.request("stats")["thread_idents"]) == len(before["thread_idents"]) + 2,
          "old accept loop retired after rebind")
    status = t.status()
    check(len(status["injections"]) == 3 and status["has_agent"], "three bootstraps ran", status["injections"])
    for x in (c, after, again):
        x.close()


def test_detach(t, st, other):
    c = Client(t.sock)
    mark = os.path.join(t.tmp, "restore-mark")
    reg = c.call("detachy", DETACH_SRC, {"mark": mark})
    check(reg["type"] == "result" and reg["data"]["token"] == "feedface" and reg["data"]["args_same"]
          and reg["data"]["client"]["pid"] == os.getpid() and reg["data"]["client"]["uid"] == os.getuid(),
          "ctx fields", reg)
    s = Client(t.sock)
    s.send({"id": 77, "op": "call", "command": "stream", "hash": sha(STREAM_SRC), "args": {"interval": 0.05}})
    s.recv()
    two = Client(t.sock)  # two calls streaming on one connection: each is told
    for rid in (5, 6):
        two.send({"id": rid, "op": "call", "command": "stream", "hash": sha(STREAM_SRC), "args": {"interval": 0.05}})
    stuck = Client(t.sock)  # never reads: its share of the notice time passes, the others still get theirs
    stuck.send({"id": 9, "op": "call", "command": "stream", "hash": sha(STREAM_SRC),
                "args": {"interval": 0, "pad": 65536}})
    time.sleep(0.2)
    t0 = time.time()
    det = c.request("detach")
    check(det["type"] == "detached" and det["restored"] == 1 and len(det["errors"]) == 1
          and "bad restore" in det["errors"][0] and det["pid"] == t.proc.pid, "detach reply", det)
    with open(mark) as f:
        check(f.read() == "restored\n", "newest registration per key ran once, removed one did not")
    check(c.eof(), "detaching client closed")
    check(other.eof(), "other clients closed on detach")
    last = s.wait_reply(77)
    event = s.stream[-1] if s.stream else None
    check(last is None and event == {
        "id": 77, "type": "event", "event": "agent_detached", "by_pid": os.getpid(), "pid": t.proc.pid,
        "message": "process %d was detached by another peeka client (pid %d)" % (t.proc.pid, os.getpid())},
        "a streaming client is told who detached, then the connection closes", (event, last))
    frames = []
    while True:
        msg = two.recv()
        if msg is None:
            break
        frames.append(msg)
    events = sorted(m["id"] for m in frames if m.get("event") == "agent_detached")
    check(events == [5, 6] and all(m.get("type") == "event" for m in frames[-2:]),
          "every running call of a connection gets the event, as its last frame", frames[-3:])
    two.close()
    stuck.close()
    check(wait_for(lambda: not os.path.exists(t.session), 1.0), "session dir removed", os.listdir(t.tmp))
    time.sleep(max(0.0, 0.6 - (time.time() - t0)))
    # agent threads end within ~ACCEPT_POLL of the close (the stuck client's a moment later)
    wait_for(lambda: t.status()["frames"] == sorted([st["main"], st["worker"]]), 2.0, 0.1)
    status = t.status()
    check(not status["has_agent"], "sys._peeka_agent gone")
    check(status["frames"] == sorted([st["main"], st["worker"]]), "no agent thread left", status["frames"])
    check(status["dummies"] == 0 and status["names"] == ["MainThread", "peeka-test-worker"],
          "threading.enumerate untouched", status["names"])
    check(status["agent_objects"] == [], "no agent object left (atexit hook unregistered)",
          status["agent_objects"])
    check(status["ticks"] > st["ticks"], "target kept running")
    try:
        Client(t.sock)
        check(False, "socket refuses after detach")
    except OSError:
        pass
    for x in (c, s, other):
        x.close()


def test_exit_cleanup(t, st):
    t.make_session()
    t.proc.send_signal(signal.SIGUSR2)  # attach again (main thread), then let the target exit
    check(wait_for(lambda: is_socket(t.sock), 2.0), "re-attach after detach")
    c = Client(t.sock)
    check(c.request("hello")["type"] == "hello", "re-attached agent answers")
    c.send({"id": 3, "op": "call", "command": "stream", "hash": sha(STREAM_SRC), "args": {}})
    c.recv()
    check(c.request("load", name="stream", hash=sha(STREAM_SRC), source=STREAM_SRC)["type"] == "loaded",
          "fresh agent loads again")
    c.send({"id": 4, "op": "call", "command": "stream", "hash": sha(STREAM_SRC), "args": {}})
    c.recv()
    socket.create_connection(("127.0.0.1", st["port"])).close()  # main leaves accept() and exits
    frames = []
    while True:
        msg = c.recv()
        if msg is None:
            break
        frames.append(msg)
    # call 3 met a fresh agent (SNIPPET_MISSING): only call 4 runs, and hears last that the target exits
    check(frames and frames[-1] == {"id": 4, "type": "event", "event": "target_exiting", "pid": t.proc.pid,
                                    "message": "process %d is exiting" % t.proc.pid},
          "a running call is told the target is exiting", frames[-2:])
    try:
        rc = t.proc.wait(5)
    except subprocess.TimeoutExpired:
        rc = "timeout"
    check(rc == 0, "target exits normally with the agent attached", rc)
    check(not os.path.exists(t.session), "atexit removed session files",
          os.listdir(t.session) if os.path.exists(t.session) else None)
    c.close()


def test_no_threading():
    stop = tempfile.mktemp(prefix="peeka-stop-")
    t = Target(TARGET_NO_THREADING, {"PEEKA_STOP": stop})
    try:
        check(wait_for(lambda: is_socket(t.sock)), "no-threading target: agent up")
        c = Client(t.sock)
        res = c.call("thread", THREAD_SRC)
        th = res.get("data", {}).get("threads", [])
        check(len(th) == 1 and th[0]["is_main"] and th[0]["name"] == "MainThread"
              and th[0]["native_id"] == t.proc.pid
              and th[0]["state"] == "TIMED_WAITING", "no-threading target: main thread listed", res)
        check(c.call("stream", STREAM_SRC, {"limit": 3})["data"]["ticks"] == 3, "no-threading: stream")
        check(c.request("detach")["type"] == "detached", "no-threading: detach")
        open(stop, "w").close()
        t.proc.wait(10)
        st = t.status(signal_first=False)
        check(st["threading"] == st["baseline"] and not st["has_agent"] and st["frames"] == 1,
              "agent never imported threading, no thread left", st)
        if st["baseline"]:
            print("  note: this interpreter imports threading at startup; import check not meaningful")
        check(t.output() == "", "no-threading target printed nothing", t.output())
    finally:
        t.cleanup()
        if os.path.exists(stop):
            os.unlink(stop)


def test_bootstrap_failures():
    """_peeka_main in this process: bad configs must be silent and leave nothing behind."""
    ns = {"__name__": "__peeka_boot__"}
    exec(compile(AGENT_SRC, "boot.py", "exec"), ns)
    tmp = tempfile.mkdtemp(prefix="peeka-selftest-")
    try:
        ns["_peeka_main"]({"session_dir": os.path.join(tmp, "missing")})
        check(not hasattr(sys, "_peeka_agent") and os.listdir(tmp) == [], "missing session dir: silent no-op")
        ns["_peeka_main"]({"session_dir": tmp, "socket": os.path.join(tmp, "s" * 200)})
        with open(os.path.join(tmp, "agent.log")) as f:
            log = f.read()
        check(not hasattr(sys, "_peeka_agent") and "bootstrap failed" in log and log.count("\n") == 1,
              "unbindable socket path: one log line, no agent", log)
        ns["_peeka_main"](None)
        check(not hasattr(sys, "_peeka_agent"), "config None: silent")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    test_unsafe_session_dirs(ns["_peeka_main"])
    test_log_is_guarded(ns["_peeka_main"])


def boot_fails(peeka_main, session_dir):
    """Bootstrap with a socket path too long to bind: past the session dir check it logs
    one line and gives up, so whether that line appears tells if the dir was accepted."""
    peeka_main({"session_dir": session_dir, "socket": os.path.join(session_dir, "s" * 200)})
    return not hasattr(sys, "_peeka_agent")


def private_dir(*parts, **kw):
    path = os.path.join(*parts)
    os.mkdir(path, 0o700)
    os.chmod(path, kw.get("mode", 0o700))
    return path


def test_unsafe_session_dirs(peeka_main):
    """The agent writes only in a session dir that is really its own and private."""
    tmp = tempfile.mkdtemp(prefix="peeka-selftest-")
    try:
        real = private_dir(tmp, "real")
        os.symlink(real, os.path.join(tmp, "link"))
        open_dir = private_dir(tmp, "open", mode=0o750)
        shared = private_dir(tmp, "shared", mode=0o777)
        in_shared = private_dir(shared, "session")
        sticky = private_dir(tmp, "sticky", mode=0o1777)
        in_sticky = private_dir(sticky, "session")
        cases = [("a symlink to a private dir", os.path.join(tmp, "link"), real),
                 ("a dir open to group and others", open_dir, open_dir),
                 ("a dir inside a dir others can write to", in_shared, in_shared)]
        if os.getuid() == 0:
            foreign = private_dir(tmp, "foreign")
            os.chown(foreign, 65534, 65534)
            cases.append(("a dir of another user", foreign, foreign))
        for label, session_dir, where in cases:
            check(boot_fails(peeka_main, session_dir) and os.listdir(where) == [],
                  "session dir is %s: refused, nothing written" % label, os.listdir(where))
        check(boot_fails(peeka_main, in_sticky) and os.listdir(in_sticky) == ["agent.log"],
              "a private dir in a sticky shared dir (like /tmp) is accepted", os.listdir(in_sticky))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_log_is_guarded(peeka_main):
    """agent.log is never written through a symlink or a hard link, and stops at 1 MiB."""
    tmp = tempfile.mkdtemp(prefix="peeka-selftest-")
    try:
        victim = os.path.join(tmp, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        by_symlink, by_hardlink, full = (private_dir(tmp, n) for n in ("symlink", "hardlink", "full"))
        os.symlink(victim, os.path.join(by_symlink, "agent.log"))
        os.link(victim, os.path.join(by_hardlink, "agent.log"))
        with open(os.path.join(full, "agent.log"), "w") as f:
            f.write("x" * (1024 * 1024))
        for d in (by_symlink, by_hardlink, full):
            boot_fails(peeka_main, d)
        with open(victim) as f:
            check(f.read() == "precious\n", "log not written through a symlink or a hard link")
        check(os.path.getsize(os.path.join(full, "agent.log")) == 1024 * 1024, "log stops growing at 1 MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    print("selftest on %s (%s)" % (sys.version.split()[0], sys.executable))
    t = Target(TARGET)
    try:
        check(wait_for(lambda: os.path.exists(t.status_path), 10), "target bootstrapped")
        st = t.status(signal_first=False)
        boot = st["injections"][0][1]
        print("  bootstrap (compile+exec+_peeka_main) took %.1f ms" % (boot * 1000))
        # ~30 ms (mostly compiling the agent): only a real defect (an import or a wait at start)
        # takes a second, even on a loaded machine
        check(boot < 1.0, "bootstrap does not wait or do heavy work", boot)
        check(is_socket(t.sock) and (os.lstat(t.sock).st_mode & 0o777) == 0o600, "socket exists, 0600")
        with open(t.victim) as f:
            check(f.read() == "precious\n" and os.stat(t.victim).st_mode & 0o777 == 0o644,
                  "a symlink planted at the socket's name: replaced, its target untouched")
        keep = test_basics(t, st)
        test_lib_binding(t)
        other = test_streaming_and_clients(t, st)
        test_malformed(t)
        test_peer_check(t)
        test_reinject(t, st, keep)
        check(keep.request("stats")["refused"] == (1 if os.getuid() == 0 else 0), "refused peers counted")
        keep.close()
        test_limits(t, held=1)  # `other`, kept for test_detach
        test_detach(t, st, other)
        test_exit_cleanup(t, st)
        check(t.output() == "", "target printed nothing", t.output())
    finally:
        t.cleanup()
    test_no_threading()
    test_bootstrap_failures()
    print("%s: %d failure(s)" % ("FAILED" if FAILURES else "PASSED", len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
