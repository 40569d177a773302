#!/usr/bin/env python3
"""Self-test for agent/lib/instrument.py (the function-instrumentation engine).

Each interpreter runs the checks in a child process of its own: the child loads
instrument.py exactly as the agent does (exec in a fresh namespace, never imported),
instruments a real module written to a temporary directory, and prints one line per
check plus the measured cost per call.

Usage:  python3 tests/agent/instrument_selftest.py [-v] [--all | PYTHON ...]
  PYTHON ...   interpreters to test (paths; launchers are fine)
  --all        every interpreter known on this machine (pyenv 3.8-3.13, Debian 3.14/3.15)
  otherwise    $PEEKA_SELFTEST_PYTHON, else the interpreter running this file
Ends with "PASSED: 0 failure(s)" or "FAILED: N failure(s)" (exit status 1).
"""
import asyncio
import gc
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
from snippet_ctx import FakeAgent  # noqa: E402
VERBOSE = "-v" in sys.argv
KNOWN = ["~/.pyenv/versions/3.8.18/bin/python3.8", "~/.pyenv/versions/3.9.18/bin/python3.9",
         "~/.pyenv/versions/3.10.13/bin/python3.10", "~/.pyenv/versions/3.11.7/bin/python3.11",
         "~/.pyenv/versions/3.12.1/bin/python3.12", "~/.pyenv/versions/3.13.0/bin/python3.13",
         "~/.cache/debian-python/3.14/bin/python3.14", "~/.cache/debian-python/3.15/bin/python3.15"]

# The module the child instruments. Written to a temporary directory and imported normally.
TARGET_MODULE = r'''
import asyncio
import functools


def add(x, y=10, *rest, scale=1, **extra):
    return (x + y + sum(rest)) * scale


def small(x, y):
    return x + y


def rebind(items, n):
    items = "rebound"
    n = None
    return 1


def fail(x):
    raise ValueError("bad %s" % x)


def posonly(a, b=2, /, c=3, *, d, e=5):
    return (a, b, c, d, e)


def differential(x):
    if isinstance(x, str):
        return x.upper()
    if x is None:
        raise TypeError("none given")
    if x % 7 == 0:
        raise ZeroDivisionError("seven %d" % x)
    if x % 11 == 0:
        raise KeyError(x)
    if x % 5 == 0:
        return [x] * 2
    return x * 3


class Calc(object):
    factor = 2

    def scale(self, x):
        return x * self.factor

    @staticmethod
    def twice(x):
        return 2 * x

    @classmethod
    def make(cls, factor):
        c = cls()
        c.factor = factor
        return c

    def __repr__(self):
        return "Calc()"

    class Inner(object):
        def deep(self, v):
            return v - 1

        class Deeper(object):
            def deepest(self):
                return "deepest"


class Base(object):
    def who(self):
        return "base"


class Child(Base):
    def who(self):
        return "child+" + super().who()   # needs the __class__ cell


def make_closure(k):
    def times(x):
        return x * k
    return times


times3 = make_closure(3)


async def fetch(x, delay=0.02):
    await asyncio.sleep(delay)
    return x * 10


async def fetch_fail(x):
    await asyncio.sleep(0.005)
    raise KeyError(x)


def countdown(n):
    got = []
    while n > 0:
        v = yield n
        if v is not None:
            got.append(v)
        n -= 1
    return ("done", got)


def catcher():
    try:
        yield 1
    except KeyError:
        yield "caught"
    yield 2


async def agen(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


async def echo():
    v = yield "ready"
    while v is not None:
        v = yield v * 2


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


@logged
def greet(name):
    return "hi " + name


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def handled(x):
    try:
        raise KeyError(x)
    except KeyError:
        return "handled"


def through(x):
    return fail(x)        # fail() is not watched: its exception passes through


alias = add                       # aliases, bound methods and registries made before any watch
HANDLERS = {"add": add, "scale": Calc().scale}
BOUND = Calc().scale
'''


# ---------------------------------------------------------------------------
# Parent: run the child on each interpreter
# ---------------------------------------------------------------------------
def interpreters():
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    if "--all" in sys.argv:
        return [p for p in (os.path.expanduser(k) for k in KNOWN) if os.path.exists(p)]
    if args:
        return args
    return [os.environ.get("PEEKA_SELFTEST_PYTHON") or sys.executable]


def parent():
    total, summary = 0, []
    for python in interpreters():
        cmd = [python, os.path.abspath(__file__), "--child"] + (["-v"] if VERBOSE else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        failures = [l for l in out.splitlines() if l.startswith("FAIL ")]
        ok = proc.returncode == 0 and "PASSED: 0 failure(s)" in out and not err.strip()
        n = len(failures) or (0 if ok else 1)
        total += n
        sys.stdout.write("== %s\n%s" % (python, out))
        if err.strip():
            sys.stdout.write("FAIL stderr of the child (the engine must never print):\n%s\n" % err)
        summary.append("%-48s %s" % (python, "ok" if ok else "FAILED (%d)" % n))
        sys.stdout.flush()
    print("\n".join(summary))
    print("PASSED: 0 failure(s)" if total == 0 else "FAILED: %d failure(s)" % total)
    return 1 if total else 0


# ---------------------------------------------------------------------------
# Child: the checks, run inside the interpreter under test
# ---------------------------------------------------------------------------
FAILURES = []


def check(name, ok, detail=""):
    if ok:
        if VERBOSE:
            print("ok   %s" % name)
    else:
        FAILURES.append(name)
        print("FAIL %s %s" % (name, detail))


def main_target(x):
    """Lives in __main__ when this file runs as a script: reachable as instrument_selftest.main_target."""
    return x + 1


class Recorder(object):
    """A probe keeping every observation."""

    def __init__(self, capture=True, enter=True, fail_enter=False, fail_exit=False):
        self.capture_args, self.enter = capture, enter
        self.fail_enter, self.fail_exit = fail_enter, fail_exit
        self.errors = 0
        self.entered = []
        self.seen = []

    def on_enter(self, call):
        self.entered.append(call.name)
        if self.fail_enter:
            raise RuntimeError("probe bug at entry")
        return self.enter

    def on_exit(self, call, result, exc, duration_ns):
        self.seen.append({"name": call.name, "args": call.args, "kwargs": dict(call.kwargs),
                          "self": call.self_obj, "result": result, "exc": exc, "ns": duration_ns,
                          "tid": call.thread_id, "arg_names": call.arg_names,
                          "frame_ok": call.frame is not None, "state": call.state.setdefault("k", 1)})
        if self.fail_exit:
            raise RuntimeError("probe bug at exit")


class Never(object):
    """A probe ignoring every call as fast as it can."""
    capture_args = False
    errors = 0

    def on_enter(self, call):
        return False

    def on_exit(self, call, result, exc, duration_ns):
        pass


class Counter(object):
    capture_args = True
    errors = 0

    def __init__(self):
        self.n = 0

    def on_enter(self, call):
        return True

    def on_exit(self, call, result, exc, duration_ns):
        self.n += 1


def child():
    tmp = tempfile.mkdtemp(prefix="peeka-instr-")
    try:
        with open(os.path.join(tmp, "peeka_st_mod.py"), "w") as f:
            f.write(TARGET_MODULE)
        os.mkdir(os.path.join(tmp, "peeka_st_pkg"))
        open(os.path.join(tmp, "peeka_st_pkg", "__init__.py"), "w").close()
        with open(os.path.join(tmp, "peeka_st_pkg", "sub.py"), "w") as f:
            f.write("def f():\n    return 1\n")
        sys.path.insert(0, tmp)
        import peeka_st_mod as m
        import peeka_st_pkg  # noqa: F401  (its submodule 'sub' stays unloaded)
        run_checks(m)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASSED: 0 failure(s)" if not FAILURES else "FAILED: %d failure(s)" % len(FAILURES))
    return 1 if FAILURES else 0


def load_engine():
    """A fresh copy of the engine, loaded as the agent loads it (the libraries it requires bound)."""
    return FakeAgent().lib("instrument").__dict__


class Engine(object):
    """Attribute access to the engine's namespace."""

    def __init__(self, ns):
        self.__dict__.update(ns)


def watch(inst, pattern, probe):
    return inst.install(inst.resolve(pattern), probe)


def error_code(inst, pattern):
    try:
        inst.resolve(pattern)
    except inst.InstrumentError as e:
        return e.code, str(e)
    return None, None


def monitoring_clean():
    mon = getattr(sys, "monitoring", None)
    if mon is None:
        return True
    return all(mon.get_tool(i) != "peeka" for i in range(6)) and \
        all(mon.get_events(i) == 0 for i in range(6) if mon.get_tool(i) is None)


def run_checks(m):
    version = "%d.%d" % sys.version_info[:2]
    before = set(sys.modules)
    ns = load_engine()
    inst = Engine(ns)
    new_modules = set(sys.modules) - before - {"difflib"}
    check("load: nothing imported into sys.modules but stdlib", all(
        n.split(".")[0] in ("time", "types", "_thread", "operator") for n in new_modules), sorted(new_modules))
    check("load: not in sys.modules, no tool id claimed", "__peeka_lib_instrument__" not in sys.modules
          and monitoring_clean())
    originals = dict((n, (getattr(m, n), getattr(m, n).__code__)) for n in
                     ("add", "small", "fail", "fib", "fetch", "countdown", "agen", "posonly", "differential",
                      "handled", "through", "greet", "times3"))

    for group in (check_errors, check_names_library, check_functions, check_descriptors,
                  check_async_and_generators, check_reachability, check_behaviour, check_main_and_misc,
                  check_other_tools, check_exceptions_more, check_restore_and_engines):
        try:
            group(inst, m)
        except Exception:       # a broken engine must fail the checks, not stop them
            check("%s ran to its end" % group.__name__, False,
                  traceback.format_exc().strip().splitlines()[-1])
            inst.uninstall_all()

    inst.uninstall_all()
    same = all(getattr(m, n) is f and f.__code__ is c for n, (f, c) in originals.items())
    check("restored: same function objects and the very same code objects", same)
    check("restored: no tool id held, no events left", monitoring_clean())
    check("restored: nothing instrumented, nothing in flight",
          inst.status() == [] and inst.stats()["in_flight"] == 0, (inst.status(), inst.stats()))
    check("engine: no internal error swallowed", inst.stats()["engine_errors"] == 0, inst.stats())
    check_timing(inst, m, version)


def check_errors(inst, m):
    for pattern in ("", "add", "peeka_st_mod.*", "peeka_st_mod..add", "peeka_st_mod.1x", "x.*.y"):
        check("BAD_PATTERN %r" % pattern, error_code(inst, pattern)[0] == "BAD_PATTERN", error_code(inst, pattern))
    code, msg = error_code(inst, "peeka_never_loaded_zz.f")
    check("NOT_LOADED for a module never imported", code == "NOT_LOADED" and "peeka_never_loaded_zz" in msg, msg)
    code, msg = error_code(inst, "peeka_st_pkg.sub.f")
    check("NOT_LOADED for an unloaded submodule", code == "NOT_LOADED" and "peeka_st_pkg.sub" in msg, msg)
    check("NOT_LOADED: nothing imported", "peeka_never_loaded_zz" not in sys.modules
          and "peeka_st_pkg.sub" not in sys.modules)
    for pattern in ("peeka_st_mod.nope", "peeka_st_mod.Calc.nope", "peeka_st_mod.Calc.Inner.nope"):
        check("NOT_FOUND %s" % pattern, error_code(inst, pattern)[0] == "NOT_FOUND", error_code(inst, pattern))
    code, msg = error_code(inst, "peeka_st_mod.ad")
    check("NOT_FOUND suggests a close name", code == "NOT_FOUND" and "peeka_st_mod.add" in msg, msg)
    code, msg = error_code(inst, "builtins.len")
    check("NOT_INSTRUMENTABLE for a C builtin", code == "NOT_INSTRUMENTABLE" and "built-in" in msg, msg)
    for pattern in ("builtins.dict.get", "builtins.str.join", "os.path", "peeka_st_mod.Calc.factor"):
        check("NOT_INSTRUMENTABLE %s" % pattern, error_code(inst, pattern)[0] == "NOT_INSTRUMENTABLE",
              error_code(inst, pattern))
    code, msg = error_code(inst, "peeka_st_mod.Calc")
    check("a class is refused with a hint", code == "NOT_INSTRUMENTABLE" and "Calc.__init__" in msg, msg)
    check("errors carry a one-line message", "\n" not in msg and len(msg) < 200, msg)


def check_names_library(inst, m):
    """The names library resolves as the engine does, refusals included (the engine's resolve
    is meant to be names.resolve with the engine's error class and its original code)."""
    names = FakeAgent().lib("names")
    for pattern in ("peeka_st_mod.add", "peeka_st_mod.greet", "peeka_st_mod.Calc.*", "peeka_st_mod.Calc.twice",
                    "peeka_st_mod.Calc.make", "instrument_selftest.main_target", "", "add", "peeka_st_mod.*",
                    "peeka_never_loaded_zz.f", "peeka_st_pkg.sub.f", "peeka_st_mod.ad", "builtins.len",
                    "os.path", "peeka_st_mod.Calc", "peeka_st_mod.Calc.factor"):
        check("names.resolve is the engine's for %r" % pattern,
              _resolution(names.resolve, pattern, inst.InstrumentError, inst._original_code)
              == _resolution(inst.resolve, pattern), pattern)


def _resolution(resolve, pattern, *how):
    """What resolve() gives for the pattern, comparable: the functions found or the refusal."""
    try:
        return [(f.name, f.func, f.binding, f.code) for f in resolve(pattern, *how)]
    except Exception as e:
        return type(e).__name__, getattr(e, "code", None), str(e)


def check_functions(inst, m):
    mechanism = "monitoring" if sys.version_info >= (3, 12) else "code-swap"
    p = Recorder()
    h = watch(inst, "peeka_st_mod.add", p)
    st = inst.status()
    check("status lists the function", len(st) == 1 and st[0]["name"] == "peeka_st_mod.add"
          and st[0]["mechanism"] == mechanism and st[0]["probes"] == 1, st)
    r = m.add(1, 2, 3, scale=2, z=5)
    o = p.seen[0] if p.seen else {}
    check("module function: result unchanged", r == 12)
    check("module function: args, kwargs, names", o.get("args") == (1, 2, 3) and o.get("kwargs") == {"scale": 2, "z": 5}
          and o.get("arg_names") == ("x", "y") and o.get("result") == 12 and o.get("self") is None
          and o.get("name") == "peeka_st_mod.add" and o.get("frame_ok"), o)
    m.add(5)
    check("defaults are applied from the function object", p.seen[-1]["args"] == (5, 10) and m.add(5) == 15,
          p.seen[-1])
    check("status counts calls", inst.status()[0]["calls"] == 3, inst.status())
    inst.uninstall(h)

    p = Recorder()
    h = watch(inst, "peeka_st_mod.rebind", p)
    items = [1]
    m.rebind(items, 7)
    check("args are the values at entry even if rebound", p.seen and p.seen[0]["args"][0] is items
          and p.seen[0]["args"][1] == 7, p.seen)
    inst.uninstall(h)

    p = Recorder()
    h = watch(inst, "peeka_st_mod.posonly", p)
    sig = str(inspect.signature(m.posonly))
    r = m.posonly(1, d=4)
    check("positional-only and keyword-only parameters", r == (1, 2, 3, 4, 5) and p.seen[0]["args"] == (1, 2, 3)
          and p.seen[0]["kwargs"] == {"d": 4, "e": 5}, (r, p.seen))
    check("signature unchanged while watched", sig == "(a, b=2, /, c=3, *, d, e=5)", sig)
    inst.uninstall(h)

    p = Recorder()
    h = watch(inst, "peeka_st_mod.Calc.scale", p)
    c = m.Calc()
    r = c.scale(3)
    o = p.seen[0] if p.seen else {}
    check("method: self excluded from args", r == 6 and o.get("args") == (3,) and o.get("self") is c
          and o.get("arg_names") == ("x",), o)
    inst.uninstall(h)

    p = Recorder()
    h = watch(inst, "peeka_st_mod.Calc.Inner.deep", p)
    h2 = watch(inst, "peeka_st_mod.Calc.Inner.Deeper.deepest", p)
    check("nested class methods", m.Calc.Inner().deep(5) == 4 and m.Calc.Inner.Deeper().deepest() == "deepest"
          and [o["result"] for o in p.seen] == [4, "deepest"], p.seen)
    inst.uninstall(h)
    inst.uninstall(h2)

    p = Recorder()
    h = watch(inst, "peeka_st_mod.Child.who", p)
    h2 = watch(inst, "peeka_st_mod.times3", p)
    check("super() and closures keep working", m.Child().who() == "child+base" and m.times3(2) == 6
          and [o["result"] for o in p.seen] == ["child+base", 6], p.seen)
    inst.uninstall(h)
    inst.uninstall(h2)

    p = Recorder()
    targets = inst.resolve("peeka_st_mod.greet")
    check("decorated: the innermost function is instrumented", targets[0].func is m.greet.__wrapped__
          and targets[0].name == "peeka_st_mod.greet", targets)
    h = inst.install(targets, p)
    check("decorated: reached by its name", m.greet("bob") == "hi bob" and p.seen
          and p.seen[0]["name"] == "peeka_st_mod.greet" and p.seen[0]["args"] == ("bob",), p.seen)
    inst.uninstall(h)

    targets = inst.resolve("peeka_st_mod.Calc.*")
    names = sorted(t.name for t in targets)
    check("Class.*: its own functions, no dunders but __init__/__call__",
          names == ["peeka_st_mod.Calc.make", "peeka_st_mod.Calc.scale", "peeka_st_mod.Calc.twice"], names)
    p = Recorder()
    h = inst.install(targets, p)
    m.Calc.twice(1), m.Calc.make(2).scale(1)
    check("Class.*: every one seen", sorted(o["name"].rsplit(".", 1)[1] for o in p.seen) == ["make", "scale", "twice"],
          p.seen)
    inst.uninstall(h)


def check_descriptors(inst, m):
    twice_d, make_d = m.Calc.__dict__["twice"], m.Calc.__dict__["make"]

    def use():
        c = m.Calc()
        return [m.Calc.twice(3), c.twice(4), m.Calc.make(5).factor, c.make(6).factor]

    plain = use()
    p = Recorder()
    ts = inst.resolve("peeka_st_mod.Calc.twice") + inst.resolve("peeka_st_mod.Calc.make")
    check("kinds: staticmethod and classmethod", [(t.kind, t.skip_first) for t in ts]
          == [("staticmethod", False), ("classmethod", True)], ts)
    h = inst.install(ts, p)
    during = use()
    check("static/class methods through the class and an instance while watched", during == plain == [6, 8, 5, 6],
          during)
    check("static/class methods: every call seen with the right args",
          [(o["args"], o["self"]) for o in p.seen] == [((3,), None), ((4,), None), ((5,), m.Calc), ((6,), m.Calc)],
          [(o["args"], o["self"]) for o in p.seen])
    check("descriptor objects untouched while watched", m.Calc.__dict__["twice"] is twice_d
          and m.Calc.__dict__["make"] is make_d)
    inst.uninstall(h)
    check("static/class methods after the watch", use() == plain and m.Calc.__dict__["twice"] is twice_d
          and m.Calc.__dict__["make"] is make_d)


def check_async_and_generators(inst, m):
    p = Recorder()
    h = watch(inst, "peeka_st_mod.fetch", p)
    h2 = watch(inst, "peeka_st_mod.fetch_fail", p)
    check("async def stays a coroutine function", inspect.iscoroutinefunction(m.fetch))
    r = asyncio.run(m.fetch(2))
    raised = None
    try:
        asyncio.run(m.fetch_fail(7))
    except KeyError as e:
        raised = e
    ok = len(p.seen) == 2 and p.seen[0]["result"] == 20 and p.seen[0]["ns"] >= 20e6 and p.seen[0]["exc"] is None
    check("async: awaited result and duration including the sleep", r == 20 and ok,
          [(o["result"], o["ns"]) for o in p.seen])
    check("async: the exception object observed", raised is not None and len(p.seen) == 2
          and p.seen[1]["exc"] is raised, p.seen[1:])
    inst.uninstall(h)
    inst.uninstall(h2)

    p = Recorder()
    h = watch(inst, "peeka_st_mod.countdown", p)
    h2 = watch(inst, "peeka_st_mod.catcher", p)
    check("generator stays a generator function", inspect.isgeneratorfunction(m.countdown))
    values = list(m.countdown(3))
    check("generator: values unchanged, observed at completion with its return value", values == [3, 2, 1]
          and len(p.seen) == 1 and p.seen[0]["result"] == ("done", []) and p.seen[0]["args"] == (3,), p.seen)
    g = m.countdown(3)
    sent = [next(g), g.send("a"), g.send("b")]
    try:
        g.send("c")
        stop = None
    except StopIteration as e:
        stop = e.value
    check("generator: send works", sent == [3, 2, 1] and stop == ("done", ["a", "b", "c"])
          and p.seen[-1]["result"] == stop, (sent, stop))
    g = m.catcher()
    got = [next(g), g.throw(KeyError("k")), next(g)]
    check("generator: throw works", got == [1, "caught", 2], got)
    g.close()
    g = m.countdown(5)
    next(g)
    g.close()
    observed = isinstance(p.seen[-1]["exc"], GeneratorExit)
    # CPython 3.13 before gh-140373 was fixed emits no event when a generator suspended
    # outside any try block is closed: the call cannot be reported there.
    silent_close = sys.version_info[:2] == (3, 13) and not observed
    check("generator: close works and is observed as GeneratorExit", g.gi_frame is None
          and (observed or silent_close), p.seen[-1])
    if silent_close:
        print("note: this 3.13 emits no PY_UNWIND for a closed suspended generator (CPython gh-140373)")
    inst.uninstall(h)
    inst.uninstall(h2)

    p = Recorder()
    h = watch(inst, "peeka_st_mod.agen", p)
    h2 = watch(inst, "peeka_st_mod.echo", p)
    check("async generator stays one", inspect.isasyncgenfunction(m.agen))

    async def iterate():
        out = [v async for v in m.agen(3)]
        e = m.echo()
        out.append(await e.asend(None))
        out.append(await e.asend(4))
        await e.aclose()
        a = m.agen(5)
        out.append(await a.__anext__())
        await a.aclose()
        return out

    out = asyncio.run(iterate())
    check("async generator: iteration, asend, aclose", out == [0, 1, 2, "ready", 8, 0], out)
    check("async generator: observed", len(p.seen) == 3 and p.seen[0]["exc"] is None
          and p.seen[0]["args"] == (3,), [(o["name"], o["exc"]) for o in p.seen])
    inst.uninstall(h)
    inst.uninstall(h2)


def check_reachability(inst, m):
    p = Recorder()
    h = watch(inst, "peeka_st_mod.add", p)
    m.alias(1, 1)
    m.HANDLERS["add"](2, 2)
    check("alias and registry made before install are seen", [o["args"] for o in p.seen] == [(1, 1), (2, 2)], p.seen)
    inst.uninstall(h)

    p = Recorder()
    h = watch(inst, "peeka_st_mod.Calc.scale", p)
    m.BOUND(4)
    m.HANDLERS["scale"](5)
    check("bound methods stored before install are seen", [o["args"] for o in p.seen] == [(4,), (5,)], p.seen)
    inst.uninstall(h)

    p = Recorder()
    h = watch(inst, "peeka_st_mod.add", p)
    barrier = threading.Barrier(4)
    results = []

    def worker(k):
        barrier.wait()
        results.append(sum(m.add(i, k) for i in range(500)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("4 threads at once: every call seen exactly once", len(p.seen) == 2000
          and len(set(o["tid"] for o in p.seen)) == 4 and sorted(results) == [124750 + 500 * k for k in range(4)],
          (len(p.seen), len(set(o["tid"] for o in p.seen))))
    inst.uninstall(h)

    p = Recorder(capture=False)
    h = watch(inst, "peeka_st_mod.small", p)
    m.small(1, 2)
    check("capture_args=False: no args captured", p.seen and p.seen[0]["args"] == () and p.seen[0]["kwargs"] == {}
          and p.seen[0]["arg_names"] == ("x", "y"), p.seen)
    inst.uninstall(h)

    p1, p2 = Recorder(), Recorder(capture=False)
    h1 = watch(inst, "peeka_st_mod.small", p1)
    h2 = watch(inst, "peeka_st_mod.small", p2)
    m.small(1, 2)
    check("two probes on one function both see the call", len(p1.seen) == 1 and len(p2.seen) == 1
          and inst.status()[0]["probes"] == 2 and p1.seen[0]["args"] == (1, 2))
    inst.uninstall(h1)
    m.small(1, 2)
    check("the other probe stays after one uninstall", len(p1.seen) == 1 and len(p2.seen) == 2)
    inst.uninstall(h2)
    inst.uninstall(h2)   # twice is harmless
    m.small(1, 2)
    check("nothing seen after the last uninstall", len(p2.seen) == 2 and inst.status() == [])


def outcomes(fn, inputs):
    out = []
    for x in inputs:
        try:
            out.append(("ok", repr(fn(x))))
        except Exception as e:
            out.append(("raise", type(e).__name__, str(e)))
    return out


def check_behaviour(inst, m):
    inputs = list(range(-30, 80)) + ["abc", None, 2.5]
    plain = outcomes(m.differential, inputs)
    for label, probe in (("capturing", Recorder()), ("failing in on_enter", Recorder(fail_enter=True)),
                         ("failing in on_exit", Recorder(fail_exit=True)), ("ignoring", Never())):
        h = watch(inst, "peeka_st_mod.differential", probe)
        watched = outcomes(m.differential, inputs)
        inst.uninstall(h)
        check("differential: identical results and exceptions with a %s probe" % label, watched == plain)
        if label.startswith("failing"):
            check("probe errors are counted (%s)" % label, probe.errors == len(inputs), probe.errors)

    p = Recorder()
    h = watch(inst, "peeka_st_mod.fib", p)
    r = m.fib(10)
    check("recursion: each call is its own observation", r == 55 and len(p.seen) == 177
          and all(o["result"] == fib_plain(o["args"][0]) for o in p.seen), len(p.seen))
    inst.uninstall(h)

    def frames_of(exc):
        return [(f.name, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]

    def catch():
        try:
            m.fail(3)
        except ValueError as e:
            return e

    plain_exc = catch()
    p = Recorder()
    h = watch(inst, "peeka_st_mod.fail", p)
    exc = catch()
    inst.uninstall(h)
    check("exception: the very object leaving the function is reported", p.seen and p.seen[0]["exc"] is exc
          and str(exc) == "bad 3", p.seen)
    pf, wf = frames_of(plain_exc), frames_of(exc)
    extra = [f for f in wf if f not in pf]
    check("exception: same traceback frames (code swap adds the 'def' line of the function only)",
          wf[-1] == pf[-1] and [f for f in wf if f in pf] == pf
          and all(f == ("fail", m.fail.__code__.co_firstlineno) for f in extra) and len(extra) <= 1, (pf, wf))


def check_exceptions_more(inst, m):
    p = Recorder()
    h = watch(inst, "peeka_st_mod.handled", p)
    h2 = watch(inst, "peeka_st_mod.through", p)
    r = m.handled(1)
    try:
        m.through(2)
        raised = None
    except ValueError as e:
        raised = e
    try:
        m.fail(3)                 # not watched: not reported
    except ValueError:
        pass
    check("an exception handled inside is not an exit; one passing through is reported",
          r == "handled" and [(o["name"].rsplit(".", 1)[1], o["result"], o["exc"]) for o in p.seen]
          == [("handled", "handled", None), ("through", None, raised)], p.seen)
    inst.uninstall(h)
    inst.uninstall(h2)

    p = Recorder()
    h = watch(inst, "peeka_st_mod.countdown", p)
    g = m.countdown(3)
    next(g)
    try:
        g.throw(IndexError("in"))
    except IndexError as e:
        thrown = e
    check("generator: an exception thrown in and not handled is reported", p.seen and p.seen[-1]["exc"] is thrown,
          p.seen)
    inst.uninstall(h)


def check_restore_and_engines(inst, m):
    f = m.small
    if sys.version_info < (3, 12):
        original = f.__code__
        h = watch(inst, "peeka_st_mod.small", Recorder())
        foreign = (lambda x, y: x * y).__code__
        f.__code__ = foreign
        inst.uninstall(h)
        check("code swap: a __code__ replaced by someone else is left alone and reported",
              f.__code__ is foreign and h.problems and inst.status() == [], h.problems)
        f.__code__ = original
    ns2 = Engine(load_engine())
    p1, p2 = Recorder(), Recorder()
    original = f.__code__
    h1 = watch(inst, "peeka_st_mod.small", p1)
    t2 = ns2.resolve("peeka_st_mod.small")
    check("a second copy of the engine resolves the original code", t2[0].code is original, t2)
    try:
        h2 = ns2.install(t2, p2)
        m.small(1, 2)
        check("two engine copies at once (3.12+: two tool ids)", sys.version_info >= (3, 12)
              and len(p1.seen) == 1 and len(p2.seen) == 1, (p1.seen, p2.seen))
        ns2.uninstall(h2)
    except ns2.InstrumentError as e:
        check("two engine copies: the second one refuses a swapped function with a hint",
              sys.version_info < (3, 12) and e.code == "NOT_INSTRUMENTABLE" and "reset" in str(e), str(e))
    inst.install(inst.resolve("peeka_st_mod.add"), Recorder())
    n = inst.uninstall_all()
    check("uninstall_all restores everything and says how many", n == 2 and inst.status() == []
          and ns2.status() == [] and monitoring_clean(), n)


def fib_plain(n):
    return n if n < 2 else fib_plain(n - 1) + fib_plain(n - 2)


def check_main_and_misc(inst, m):
    main = sys.modules["__main__"]
    p = Recorder()
    try:
        h = watch(inst, "instrument_selftest.main_target", p)
    except inst.InstrumentError as e:
        h = None
        check("a script's functions are found in __main__", False, str(e))
    if h is not None:
        main.main_target(1)
        check("a script's functions are found in __main__", len(p.seen) == 1 and p.seen[0]["result"] == 2, p.seen)
        inst.uninstall(h)

    p = Recorder()
    h = watch(inst, "peeka_st_mod.countdown", p)
    g = m.countdown(3)
    next(g)
    inst.uninstall(h)
    rest = list(g)
    check("uninstall while a generator is suspended: it finishes normally", rest == [2, 1] and p.seen == [])

    if sys.version_info >= (3, 12):
        ns_globals = inst.install.__globals__
        old = ns_globals["_INFLIGHT_MAX"]
        ns_globals["_INFLIGHT_MAX"] = 5
        p = Recorder()
        h = watch(inst, "peeka_st_mod.countdown", p)
        gens = [m.countdown(3) for _ in range(12)]
        for g in gens:
            next(g)
        stats = inst.stats()
        check("in-flight table is bounded (oldest evicted)", stats["in_flight"] <= 6 and stats["evicted"] >= 6, stats)
        inst.uninstall(h)
        ns_globals["_INFLIGHT_MAX"] = old
        del gens
        gc.collect()

    p = Recorder(enter=False)
    h = watch(inst, "peeka_st_mod.small", p)
    m.small(1, 1)
    check("on_enter returning False: no exit callback", p.entered == ["peeka_st_mod.small"] and p.seen == [])
    inst.uninstall(h)


def check_other_tools(inst, m):
    mon = getattr(sys, "monitoring", None)
    if mon is None:
        return
    mine = [i for i in (4, 3) if mon.get_tool(i) is None]
    for i in mine:
        mon.use_tool_id(i, "other-tool")
    try:
        p = Recorder()
        h = watch(inst, "peeka_st_mod.small", p)
        tool = inst.stats()["tool_id"]
        m.small(2, 3)
        check("another tool holding ids: a free one is used", tool not in mine and len(p.seen) == 1, (tool, mine))
        inst.uninstall(h)
        check("other tools' ids untouched", all(mon.get_tool(i) == "other-tool" for i in mine))
        taken = [i for i in range(6) if mon.get_tool(i) is None]
        for i in taken:
            mon.use_tool_id(i, "other-tool")
        try:
            code = None
            try:
                watch(inst, "peeka_st_mod.small", Recorder())
            except inst.InstrumentError as e:
                code = e.code
            check("every tool id taken: a clear refusal", code == "NOT_INSTRUMENTABLE" and inst.status() == [], code)
        finally:
            for i in taken:
                mon.free_tool_id(i)
    finally:
        for i in mine:
            mon.free_tool_id(i)


def ns_per_call(fn, n=200000, rounds=5):
    best = None
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for i in range(n):
            fn(i, 1)
        per = (time.perf_counter_ns() - t0) / float(n)
        best = per if best is None else min(best, per)
    return best


def check_timing(inst, m, version):
    ns_per_call(m.small, rounds=2)      # warm up
    plain = ns_per_call(m.small)
    h = watch(inst, "peeka_st_mod.small", Never())
    never = ns_per_call(m.small)
    inst.uninstall(h)
    h = watch(inst, "peeka_st_mod.small", Counter())
    capture = ns_per_call(m.small, n=100000)
    inst.uninstall(h)
    after = ns_per_call(m.small)
    print("timing %s: plain %.0f ns/call | on_enter->False %.0f (+%.0f) | capturing args %.0f (+%.0f) |"
          " after uninstall %.0f ns/call" % (version, plain, never, never - plain, capture, capture - plain, after))
    # Speed is measured by `deno task bench`, side by side. These bounds only catch a gross
    # defect (work per call that should be done once: ~100x today's cost), never a slow or
    # loaded machine: a plain call here is 50-200 ns, a watched one 0.3-3 us. That the
    # uninstall leaves nothing behind is checked exactly above (same code objects, no tool id).
    check("cost with on_enter->False below 100 us (gross defect only)", never - plain < 100000, never - plain)
    check("cost with captured args below 300 us (gross defect only)", capture - plain < 300000, capture - plain)
    check("after uninstall within 10x of plain (gross defect only)", after <= plain * 10 + 1000, (plain, after))


if __name__ == "__main__":
    if "--child" in sys.argv:
        sys.exit(child())
    sys.exit(parent())
