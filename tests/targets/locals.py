# A frame with known local variables, for `peeka dump --locals`: `hold` keeps the GIL in a C
# call (ctypes.PyDLL) for a minute with one local of each kind a reader renders, a cell shared
# with a closure, and an object whose __repr__ would create the file named by argv[1] (a
# reader that ran target code would leave it behind). Prints "ready" once in the call;
# SIGUSR1 ends the call early.
import ctypes
import signal
import sys

MARKER_FILE = sys.argv[1]


class Marker:
    def __repr__(self):
        open(MARKER_FILE, "w").close()
        return "Marker()"

    def __str__(self):
        return self.__repr__()


def hold(count, negative, big, ratio, name, nothing, flag, items, pair, table, data, marker):
    long_text = "x" * 1000
    shared = "in a cell"

    def inner():
        return shared

    print("ready", flush=True)
    return ctypes.PyDLL(None).sleep(60), inner, long_text


signal.signal(signal.SIGUSR1, lambda *_: None)
hold(42, -7, 2**100, 0.5, "it's", None, True, [1, 2, 3], (4, 5), {"a": 1}, b"\x00ab", Marker())
print("woke", flush=True)
