# A process wedged two ways at once, for `peeka dump`: two threads deadlocked on each other's
# lock, and the main thread holding the GIL in a C call that does not return for a minute
# (ctypes.PyDLL keeps the GIL across the call). Prints "ready" once both are in place;
# SIGUSR1 ends the C call early (libc's sleep returns on a signal), then the main thread
# prints what it computed and exits (the deadlocked threads are daemons).
import ctypes
import signal
import sys
import threading
import time

first = threading.Lock()
second = threading.Lock()
both_hold = threading.Barrier(2)


def take_first_then_second():
    with first:
        both_hold.wait()
        with second:
            pass


def take_second_then_first():
    with second:
        both_hold.wait()
        with first:
            pass


def hold_gil_in_c():
    print("ready", flush=True)
    return ctypes.PyDLL(None).sleep(int(sys.argv[1]) if len(sys.argv) > 1 else 60)


signal.signal(signal.SIGUSR1, lambda *_: None)
for target in (take_first_then_second, take_second_then_first):
    threading.Thread(target=target, name=target.__name__, daemon=True).start()
while not (first.locked() and second.locked()):
    time.sleep(0.01)
time.sleep(0.2)  # both threads are now blocked on the other's lock
left = hold_gil_in_c()
print("woke", left > 0, sum(range(1000)), threading.active_count(), flush=True)
