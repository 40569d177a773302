# A gevent process for tests/gevent.test.ts. Prints "ready <pid> 0", then:
#   late   not patched at start; SIGUSR1 makes the main loop call monkey.patch_all() (after the
#          attach), then it prints "patched"
#   spin   patched at start; a greenlet spins without yielding for SPIN seconds every time
#          SIGUSR1 arrives, between "spin-start" and "spin-end" lines
# Other greenlets tick meanwhile, so the hub has work of its own.
import os
import signal
import sys
import time

SPIN = 5.0
mode = sys.argv[1]
if mode == "spin":
    from gevent import monkey

    monkey.patch_all()
import gevent  # noqa: E402

wanted = []


def on_usr1(signum, frame):
    wanted.append(signum)  # acted on by the main loop: nothing heavy in a signal handler


def spin():
    print("spin-start", flush=True)
    ends = time.monotonic() + SPIN
    n = 0
    while time.monotonic() < ends:  # never yields to the hub
        n += 1
    print("spin-end", n, flush=True)


def ticker():
    while True:
        gevent.sleep(0.05)


signal.signal(signal.SIGUSR1, on_usr1)
gevent.spawn(ticker)
print("ready %d 0" % os.getpid(), flush=True)
while True:
    gevent.sleep(0.02)
    while wanted:
        wanted.pop()
        if mode == "late":
            from gevent import monkey

            monkey.patch_all()
            print("patched", flush=True)
        else:
            gevent.spawn(spin)
