# Runs inside the subinterpreter of subinterp.py (imported there): spins for at most 30 s
# (a test kills the process long before), then sleeps, so a forgotten target costs little.
# 3.9-3.11 share one GIL, but a subinterpreter's thread does not see the main interpreter's
# requests to drop it (each interpreter has its own eval breaker): there it sleeps in the
# loop, or the main thread would never run again.
import sys
import time


def spin_in_subinterpreter():
    pause = 0.05 if (3, 9) <= sys.version_info < (3, 12) else 0
    ends = time.monotonic() + 30
    while time.monotonic() < ends:
        if pause:
            time.sleep(pause)
    while True:
        time.sleep(1)
