# Target for the condition tests: a worker thread calls work() every 2 ms with values a
# condition bomb can feed on (a deeply shared list, a long text, a user object whose dunders and
# property count their calls), a heartbeat thread ticks every 10 ms and keeps the longest gap
# between ticks (a condition holding the GIL shows there), and the main thread serves commands
# on a TCP socket:  report (JSON: calls, max_gap_ms, marks)  |  reset (forget the longest gap).
import json
import sys
import threading
import time

import command_loop

SECRET = "s3cret"
STATE = {"calls": 0, "max_gap_ms": 0.0, "marks": 0}
SHARED = [[0] * 1000] * 1000          # a million elements for a walk, 16 KB of memory
BLOB = "ab " * 400000
RAW = b"xn--bcher-kva"


class Order(object):
    def __init__(self, total):
        self.total = total
        self.gen = (i for i in range(3))

    def _mark(self):
        STATE["marks"] += 1

    @property
    def doubled(self):
        self._mark()
        return self.total * 2

    def __eq__(self, other):
        self._mark()
        return False

    def __hash__(self):
        self._mark()
        return 1

    def __repr__(self):
        self._mark()
        return "Order(%d)" % self.total

    def __bool__(self):
        self._mark()
        return True


def work(items, name, order, blob, raw):
    STATE["calls"] += 1
    return len(name)


def worker():
    order = Order(5)
    while True:
        work(SHARED, "bob", order, BLOB, RAW)
        time.sleep(0.002)


def heartbeat():
    last = time.monotonic()
    while True:
        time.sleep(0.01)
        now = time.monotonic()
        STATE["max_gap_ms"] = max(STATE["max_gap_ms"], (now - last) * 1000)
        last = now


def serve():
    for cmd, reply in command_loop.commands():
        if cmd.strip() == b"reset":
            STATE["max_gap_ms"] = 0.0
        reply((json.dumps(STATE) + "\n").encode())


if __name__ == "__main__":
    sys.setswitchinterval(0.005)
    threading.Thread(target=worker, name="worker", daemon=True).start()
    threading.Thread(target=heartbeat, name="heartbeat", daemon=True).start()
    serve()
