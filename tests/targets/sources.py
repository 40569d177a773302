# Target for tests/source.test.ts: code of every shape `peeka source` shows. It writes two modules
# into a fresh directory and imports them: `srcmod` (functions, a class, nested functions, lambdas,
# exec-defined code) and `stalemod` (which the test rewrites after import); `trapmod` has a loader
# and a linecache entry that would leave a marker file if anything called them.
import linecache
import os
import sys
import tempfile
import time

SRCMOD = '''\
import functools


def plain(a, b=2):
    """Adds."""
    total = a + b
    return total


def outer(x):
    def inner(y):
        return x + y
    square = lambda v: v * v
    return inner(square(x))


def deco(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


@deco
def decorated(n):
    return n * 3


class Shape(object):
    """A shape."""

    sides = 0

    def __init__(self, name):
        self.name = name

    @staticmethod
    def unit():
        return 1

    def area(self):
        return 0


double = lambda n: n * 2

GENERATED = {}
exec(compile("def made(q):\\n    return q + 1\\n", "<generated made>", "exec"), GENERATED)
made = GENERATED["made"]
exec("def from_string(z):\\n    return z - 1\\n")
'''

STALEMOD = '''\
def compute(a):
    return a + 1


def untouched(b):
    return b * 2
'''


def main():
    work = tempfile.mkdtemp(prefix="peeka-source-")
    for name, text in (("srcmod", SRCMOD), ("stalemod", STALEMOD)):
        with open(os.path.join(work, name + ".py"), "w") as f:
            f.write(text)
    sys.path.insert(0, work)
    sys.dont_write_bytecode = True
    import srcmod  # noqa: F401
    import stalemod  # noqa: F401
    make_trap(work)
    print("ready %s 0" % work, flush=True)
    while True:
        time.sleep(1)


class TrapLoader(object):
    """A loader whose get_source leaves a marker: peeka must never call it."""

    def __init__(self, marker):
        self.marker = marker

    def get_source(self, name):
        open(self.marker, "w").close()
        return "def trapped():\n    return 42\n"


def make_trap(work):
    marker = os.path.join(work, "get_source_called")
    module = type(sys)("trapmod")
    module.__loader__ = TrapLoader(marker)
    module.__file__ = "<virtual trapmod>"
    exec(compile("def trapped():\n    return 42\n", "<virtual trapmod>", "exec"), module.__dict__)
    sys.modules["trapmod"] = module
    # a lazy linecache entry: linecache.getlines would call it
    linecache.cache["<virtual trapmod>"] = (lambda: module.__loader__.get_source("trapmod"),)


if __name__ == "__main__":
    main()
