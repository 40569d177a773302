#!/usr/bin/env python3
"""Fuzz test of agent/lib/condition.py, and its list of condition bombs.

Generates random expressions from the condition grammar (the whitelist and beyond it) and
evaluates each against objects whose every dunder, property and descriptor leaves a mark when
called. Strict mode: no mark ever. Default mode: only the marks docs/architecture.md lists
(comparisons, hashing, str/repr, truth, `in`, operators, int()/float()/round()/abs() and
index conversions, property getters). Every evaluation either gives a bool or raises
ConditionEvalError, within a second. Then every bomb is refused at compile time or cut off
within the time and memory bounds.
Usage:  pythonX.Y tests/agent/condition_fuzz.py [--seconds N] [--seed S] [-v]
"""
import collections
import enum
import os
import random
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
from snippet_ctx import FakeAgent  # noqa: E402
MARKS = []
SEEN = set()           # the marks the default mode left: shows what the fuzz reached
FAILURES = []
VERBOSE = "-v" in sys.argv

# What the default mode may run of the target's code (docs/architecture.md, "Conditions").
DOCUMENTED = frozenset("""property __eq__ __ne__ __lt__ __le__ __gt__ __ge__ __hash__ __str__ __repr__
__bool__ __len__ __contains__ __add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__
__floordiv__ __rfloordiv__ __mod__ __rmod__ __pow__ __rpow__ __lshift__ __rlshift__ __rshift__ __rrshift__
__and__ __rand__ __or__ __ror__ __xor__ __rxor__ __neg__ __pos__ __invert__ __abs__ __int__ __float__
__index__ __round__ __trunc__ __complex__""".split())
EVAL_SECONDS = 1.0     # per evaluation: the budget's worst case is ~50 ms here; 20x for a slow machine
RSS_MB = 50            # growth over all bombs: the budget lets a condition build a few MB at most


def fail(label, detail=""):
    FAILURES.append(label)
    print("FAIL: %s %s" % (label, detail))


def load():
    """agent/lib/condition.py as the agent loads it, the libraries it requires bound."""
    return FakeAgent().lib("condition").__dict__


def marking(name, value):
    def dunder(*args, **kwargs):
        MARKS.append(name)
        return value
    dunder.__name__ = name
    return dunder


_RESULTS = {"__eq__": False, "__ne__": True, "__lt__": False, "__le__": False, "__gt__": False,
            "__ge__": False, "__hash__": 1, "__str__": "M", "__repr__": "M", "__len__": 1, "__bool__": True,
            "__contains__": False, "__index__": 1, "__int__": 1, "__float__": 1.0, "__complex__": 1j,
            "__round__": 1, "__trunc__": 1, "__abs__": 1, "__neg__": 1, "__pos__": 1, "__invert__": 1,
            "__format__": "M", "__getitem__": 1, "__missing__": 0, "__call__": 1, "__setattr__": None,
            "__delattr__": None, "__setitem__": None, "__delitem__": None, "__reversed__": iter(())}
for _op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "lshift", "rshift", "and", "or", "xor",
            "matmul"):
    _RESULTS["__%s__" % _op] = _RESULTS["__r%s__" % _op] = 1


def dunders(skip=()):
    body = dict((n, marking(n, v)) for n, v in _RESULTS.items() if n not in skip)
    body["__iter__"] = lambda self: (MARKS.append("__iter__"), iter(()))[1]
    body["__getattr__"] = lambda self, name: (MARKS.append("__getattr__"), 1)[1]
    return body


class LookAlike(object):
    """A descriptor with an fget that is not a property: neither is ever called."""
    def __init__(self):
        self.fget = marking("fget", 1)

    def __get__(self, obj, owner):
        MARKS.append("__get__")
        return 1


class Meta(type):
    __hash__ = marking("metaclass __hash__", 1)
    __eq__ = marking("metaclass __eq__", False)

    def __getattribute__(cls, name):
        MARKS.append("metaclass __getattribute__")
        return type.__getattribute__(cls, name)


def _getattribute(self, name):
    MARKS.append("__getattribute__")
    return object.__getattribute__(self, name)


Marker = Meta("Marker", (object,), dict(dunders(), __getattribute__=_getattribute,
                                         doubled=property(marking("property", 2)), fake=LookAlike()))
Plain = Meta("Plain", (object,), dict(dunders(skip=("__bool__",)), doubled=property(marking("property", 2))))
ListSub = type("ListSub", (list,), dunders(skip=("__setattr__",)))
DictSub = type("DictSub", (dict,), dunders(skip=("__setattr__",)))
StrSub = type("StrSub", (str,), dunders(skip=("__setattr__", "__getitem__")))


class Color(enum.Enum):
    RED = 1


Point = collections.namedtuple("Point", "x y")


def make_env():
    m, pl = Marker(), Plain()
    object.__setattr__(m, "total", 3)
    object.__setattr__(m, "mod", sys)
    object.__setattr__(m, "ns", globals())
    object.__setattr__(m, "gen", (i for i in range(2)))
    shared = [[0] * 300] * 300
    env = {"m": m, "p": pl, "l": [1, m, "a"], "ls": ListSub([1, 2]), "d": {"a": 1, m: 2}, "ds": DictSub(a=1),
           "s": "ab c", "ss": StrSub("ab"), "n": 7, "f": 2.5, "b": b"ab", "big": shared, "e": Color.RED,
           "pt": Point(1, m), "t": (1, (2, [m])), "st": {1, 2}, "fs": frozenset([pl]), "none": None,
           "params": (1, m), "kwargs": {"k": m}, "target": pl, "cost": 1.5, "result": m, "exception": None}
    env["args"] = env["params"]
    return env


NAMES = ["m", "p", "l", "ls", "d", "ds", "s", "ss", "n", "f", "b", "big", "e", "pt", "t", "st", "fs", "none",
         "params", "args", "kwargs", "target", "cost", "result", "exception", "nosuch"]
CONSTS = ["0", "1", "-1", "2.5", "'a'", "''", "b'x'", "None", "True", "()", "[]", "{}", "(1, 'a')", "[1, 2]",
          "{1: 2}", "{1}", "10**5", "'ab'*3", "1e308"]
ATTRS = ["total", "doubled", "fake", "real", "imag", "name", "value", "x", "y", "gen", "gi_frame", "f_globals",
         "f_builtins", "gi_code", "mod", "ns", "missing", "__class__", "_private", "count", "keys"]
FUNCS = ["len", "str", "int", "float", "bool", "abs", "min", "max", "round", "repr_short", "type_name",
         "getattr", "eval", "isinstance", "vars", "sorted"]
METHODS = ["startswith", "endswith", "lower", "upper", "strip", "split", "count", "find", "replace", "get",
           "keys", "values", "items", "index", "is_integer", "isdigit", "append", "pop", "join", "format",
           "__len__"]
BINOPS = ["+", "-", "*", "/", "//", "%", "**", "<<", ">>", "&", "|", "^", "@"]
CMPOPS = ["==", "!=", "<", "<=", ">", ">=", "is", "is not", "in", "not in"]


def expr(r, depth):
    if depth <= 0 or r.random() < 0.25:
        return r.choice(NAMES) if r.random() < 0.6 else r.choice(CONSTS)
    k, e = r.randrange(16), lambda: expr(r, depth - 1)
    if k == 0:
        return "%s %s %s" % (e(), r.choice(BINOPS), e())
    if k in (1, 2):
        return "%s %s %s" % (e(), r.choice(CMPOPS), e())
    if k == 3:
        return "%s %s %s" % (e(), r.choice(["and", "or"]), e())
    if k == 4:
        return "%s%s" % (r.choice(["-", "+", "~", "not "]), e())
    if k == 5:
        return "%s if %s else %s" % (e(), e(), e())
    if k in (6, 7):
        args = ", ".join(e() for _ in range(r.choice([1, 1, 1, 2])))
        if r.random() < 0.1:
            args += ", %r" % r.choice(["utf-8", "idna", "ascii", "rot13"])
        return "%s(%s)" % (r.choice(FUNCS), args)
    if k == 8:
        return "%s.%s(%s)" % (e(), r.choice(METHODS), ", ".join(e() for _ in range(r.randrange(3))))
    if k in (9, 10):
        return "%s.%s" % (e(), r.choice(ATTRS))
    if k == 11:
        return "%s[%s]" % (e(), e())
    if k == 12:
        return "%s[%s:%s]" % (e(), r.choice(["", e()]), r.choice(["", e()]))
    if k == 13:
        return "f'{%s%s}'" % (e(), r.choice(["", "!r", "!s", ":>3", "!a"]))
    if k == 14:
        return "(%s, %s)" % (e(), e()) if r.random() < 0.5 else "[%s]" % e() if r.random() < 0.5 else "{%s: %s}" % (e(), e())
    return r.choice(["lambda: %s", "[v for v in %s]", "(z := %s)", "[*%s]", "{**%s}", "%s(1)", "(%s).__class__"]) % e()


def evaluate(C, source, strict, env, r):
    """Compiles and evaluates; returns a failure description, or None."""
    try:
        cond = C["compile_condition"](source, strict)
    except C["ConditionError"] as e:
        return None if str(e) and "\n" not in str(e) else "refusal is not one line: %r" % str(e)
    del MARKS[:]
    t0 = time.perf_counter()
    try:
        if r.random() < 0.3:          # the engine's form, over a call's (args, kwargs, self)
            accept = cond.acceptor({"x": 0, "y": 1}, lambda: True, lambda message: False)
            env = dict(env)
            got = accept(env["params"], env["kwargs"], env["target"]) if accept else False
        else:
            got = cond.evaluate(env)
        if got not in (True, False):
            return "gave %r" % (got,)
    except C["ConditionEvalError"]:
        pass
    except BaseException as e:
        return "raised %s: %s" % (type(e).__name__, e)
    finally:
        seconds = time.perf_counter() - t0
    if seconds > EVAL_SECONDS:
        return "took %.2f s" % seconds
    marks = set(MARKS)
    SEEN.update(marks)
    if strict and marks:
        return "strict mode ran the target's %s" % sorted(marks)
    if not strict and marks - DOCUMENTED:
        return "ran the target's %s (not documented)" % sorted(marks - DOCUMENTED)
    return None


def fuzz(C, seconds, seed):
    r = random.Random(seed)
    env = make_env()
    snapshot = (list(env["l"]), dict(env["d"]), list(env["ls"]), dict(env["ds"]))
    n, deadline = 0, time.time() + seconds
    while time.time() < deadline:
        source = expr(r, r.randrange(1, 5))
        for strict in (True, False):
            problem = evaluate(C, source, strict, env, r)
            if problem:
                fail("%s mode: %s" % ("strict" if strict else "default", source), problem)
        n += 1
    if snapshot != (list(env["l"]), dict(env["d"]), list(env["ls"]), dict(env["ds"])):
        fail("a condition changed the target's values")
    print("fuzz: %d expressions (seed %d), each in both modes; the default mode ran %s"
          % (n, seed, " ".join(sorted(SEEN))))


BOMBS = [
    "[[[0]*100000]*100000]*100000 == [[[0]*100000]*100000]*100000",
    "str([[0]*100000]*100000) == 'x'",
    "str([[[0]*1000]*1000]*1000) == 'x'",
    "[[0]*1000]*1000 == [[0]*1000]*1000",
    "9**9**9", "2**100000", "'a'*10**9", "1 << 10**6", "[0]*10**8",
    "big == big", "str(big) == ''", "f'{big}{big}{big}' == ''", "min(big) == 0",
    "max(big) == 0", "big in big", "(big,) in {(big,)}", "{big: 1} == {}", "big.count(big) > 0",
    "big.index(big) > 0", "d2.get(big) == 1", "text + text == ''", "text * 2 == ''", "text.split() == []",
    "text.upper() == ''", "text.replace('a', text) == ''", "text.count('a') > 0", "list(text)",
    "huge * huge > 0", "huge // (huge - 1) > 0", "huge % (huge - 7) > 0", "str(huge) == ''", "int(digits) > 0",
    "str(raw, 'idna') == ''", "str(raw, 'utf-8', 'backslashreplace') == ''", "str(huge_raw, 'utf-8') == ''",
    "longlist + longlist == []", "longlist[:] == []", "longset | longset == set()", "str(longlist) == ''",
    "(longlist, longlist) == (longlist, longlist)", "gen.gi_frame.f_globals['SECRET'] == 1",
    "gen.gi_frame.f_builtins['len'] == len", "m.ns['SECRET'] == 1", "m.mod.path == []",
    "float(text) > 0", "round(1.5, 10**9) > 0", "'%s' % text == ''",
]


# repr_short() and {x!r} show at most 200 characters: these evaluate, within the same bounds.
SHORTENED = ["repr_short(big) == ''", "f'{text!r}' == ''", "repr_short(huge) == ''", "f'{longlist!r}' == ''"]


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak():
    """The resident size now (KiB), with the peak reset to it (Linux clear_refs), so that
    peak() shows what the bombs allocated even if they freed it; else ru_maxrss."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status("VmRSS")
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak():
    return _status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def bombs(C):
    shared = [[0] * 1000] * 1000
    m = Marker()
    object.__setattr__(m, "ns", globals())
    object.__setattr__(m, "mod", sys)
    env = {"big": shared, "text": "ab " * 2000000, "huge": 10 ** 200000 + 12345, "digits": "7" * 100000,
           "raw": b"xn--bcher-kva", "huge_raw": b"a" * 10 ** 7, "longlist": list(range(10 ** 6)),
           "longset": set(range(10 ** 6)), "gen": (i for i in range(3)), "d2": {1: 2}, "m": m}
    SECRET = 1  # noqa: F841  (what gi_frame.f_globals would reach)
    rss0 = reset_peak()
    for source in BOMBS + SHORTENED:
        t0 = time.perf_counter()
        outcome = "refused"
        try:
            C["compile_condition"](source).evaluate(env)
            outcome = "evaluated"
        except C["ConditionError"]:
            pass
        except C["ConditionEvalError"] as e:
            outcome = "cut off: %s" % e
        seconds = time.perf_counter() - t0
        if (outcome == "evaluated" and source not in SHORTENED) or seconds > EVAL_SECONDS:
            fail("bomb %.60s" % source, "%s in %.2f s" % (outcome, seconds))
        elif VERBOSE:
            print("  %.60s: %s (%.3f s)" % (source, outcome[:80], seconds))
    grown = (peak() - rss0) / 1024.0
    print("bombs: %d, peak memory grew %.1f MB" % (len(BOMBS + SHORTENED), grown))
    if grown > RSS_MB:
        fail("bombs grew memory by %.1f MB" % grown)


def main():
    seconds, seed = 3.0, 18
    if "--seconds" in sys.argv:
        seconds = float(sys.argv[sys.argv.index("--seconds") + 1])
    if "--seed" in sys.argv:
        seed = int(sys.argv[sys.argv.index("--seed") + 1])
    print("Python %s" % sys.version.split()[0])
    C = load()
    bombs(C)
    fuzz(C, seconds, seed)
    print("%s: %d failure(s)" % ("PASSED" if not FAILURES else "FAILED", len(FAILURES)))
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
