# Runs inside the subinterpreter of subinterp.py (imported there): spins for at most 30 s
# (a test kills the process long before), then sleeps, so a forgotten target costs little.
import time


def spin_in_subinterpreter():
    ends = time.monotonic() + 30
    while time.monotonic() < ends:
        pass
    while True:
        time.sleep(1)
