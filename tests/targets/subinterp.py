# A process with a subinterpreter, for `peeka dump`: the main thread holds the main
# interpreter's GIL in a C call that does not return (ctypes.PyDLL keeps it), a second thread
# of the main interpreter waits in a sleep loop, and a third thread runs code inside a
# subinterpreter (made with _xxsubinterpreters on 3.8-3.12, _interpreters on 3.13+), where it
# loops (subinterp_worker.py): on 3.12+ the subinterpreter has a GIL of its own, so it spins
# while the main one is held; before, it waits for the one GIL. Prints "subinterpreter ID",
# then "ready".
import ctypes
import os
import sys
import threading
import time

try:
    import _interpreters as interpreters
except ImportError:
    import _xxsubinterpreters as interpreters

HERE = os.path.dirname(os.path.abspath(__file__))
SUB = """
import os, sys
sys.path.insert(0, {here!r})
import subinterp_worker
os.write({fd}, b"x")
subinterp_worker.spin_in_subinterpreter()
"""


def wait_in_worker():
    while True:
        time.sleep(0.05)


def run_in_subinterpreter(interp, fd):
    interpreters.run_string(interp, SUB.format(here=HERE, fd=fd))


def hold_gil_in_c():
    print("ready", flush=True)
    return ctypes.PyDLL(None).sleep(int(sys.argv[1]) if len(sys.argv) > 1 else 60)


interp = interpreters.create()
print("subinterpreter", int(interp), flush=True)
started, entered = os.pipe()
threading.Thread(target=wait_in_worker, name="wait_in_worker", daemon=True).start()
threading.Thread(target=run_in_subinterpreter, args=(interp, entered), daemon=True).start()
os.read(started, 1)  # the subinterpreter's thread runs its code
time.sleep(0.1)
hold_gil_in_c()
