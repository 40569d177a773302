# Target for the memory growth tests: it leaks on purpose, in four ways a real service does, once
# the test says so ("grow"), at known rates per second, each leak of its own class:
#   - CacheEntry objects in a module-level cache dict (CACHE)
#   - Record objects in a list held by a class attribute (Registry.history)
#   - closures (a function and its cell) holding a Payload, kept by a registered callback (BUS)
#   - Blob objects in a list that only a worker thread's frame holds
# A ticker thread adds what the elapsed time calls for (no drift under load). Commands on the TCP
# socket: grow | stop | report (JSON: how many of each, a checksum of work done) | modules (the
# sorted names in sys.modules) | referrers (what refers to one object of each leak, by kind).
# For bench/memory.ts: fill N (N more Blob objects held by a global list; a heartbeat thread
# starts) | gap (the longest the heartbeat waited past its 1 ms sleep since the last gap, in ms).
import gc
import json
import sys
import threading
import time

import command_loop

RATES = {"CacheEntry": 800, "Record": 400, "Payload": 200, "Blob": 100}   # per second
CACHE = {}
MADE = dict.fromkeys(RATES, 0)
GROWING = threading.Event()
STILL = threading.Event()     # set by the ticker once it has seen growth stopped


class CacheEntry(object):
    def __init__(self, key):
        self.key = key
        self.hits = 0


class Record(object):
    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n


STARTUP = 3000   # records loaded and callbacks subscribed at start: both lists are big from the first


class Registry(object):
    history = []


class Payload(object):
    def __init__(self, n):
        self.n = n


class Blob(object):
    def __init__(self, n):
        self.n = n


class Bus(object):
    """Registered callbacks: a subscriber that never unsubscribes leaks its closure."""

    def __init__(self):
        self.handlers = []

    def subscribe(self, fn):
        self.handlers.append(fn)


BUS = Bus()


def audit(event):
    return 1


for _n in range(STARTUP):
    Registry.history.append(Record(-1))
    BUS.subscribe(audit)


def make_handler(payload):
    def handler(event):
        return payload.n + event
    return handler


def add(kind, n):
    if kind == "CacheEntry":
        CACHE["k%d" % n] = CacheEntry(n)
    elif kind == "Record":
        Registry.history.append(Record(n))
    elif kind == "Payload":
        BUS.subscribe(make_handler(Payload(n)))
    else:
        BLOBS_WANTED[0] += 1
    MADE[kind] += 1


BLOBS_WANTED = [0]


def ticker():
    grown, since = 0.0, None      # seconds of growth before the current run, its start
    while True:
        time.sleep(0.01)
        if not GROWING.is_set():
            if since is not None:
                grown, since = grown + time.monotonic() - since, None
            STILL.set()
            continue
        STILL.clear()
        since = since if since is not None else time.monotonic()
        elapsed = grown + time.monotonic() - since
        for kind, rate in RATES.items():
            while MADE[kind] < int(rate * elapsed):
                add(kind, MADE[kind])


def holder():
    """Keeps Blobs alive in its own frame only."""
    kept = []
    while True:
        while len(kept) < BLOBS_WANTED[0]:
            kept.append(Blob(len(kept)))
        HELD[0] = len(kept)
        time.sleep(0.005)


HELD = [0]


def checksum():
    """Work whose result must not change while peeka looks (or collects)."""
    return sum(e.key for e in list(CACHE.values())[:1000]) + sum(r.n for r in Registry.history[:1000]) + \
        sum(h(1) for h in BUS.handlers[:1000])


def tracing():
    tm = sys.modules.get("tracemalloc")
    return bool(tm and tm.is_tracing())


def referrers():
    """One object of each leak: the kinds of what refers to it (frames by file, dicts by owner)."""
    out = {}
    samples = {"CacheEntry": next(iter(CACHE.values()), None),
               "Record": Registry.history[0] if Registry.history else None,
               "Payload": BUS.handlers[STARTUP].__closure__[0].cell_contents if len(BUS.handlers) > STARTUP else None}
    for kind in list(samples):     # not items(): its (kind, obj) tuple would refer to obj
        kinds = []
        for r in gc.get_referrers(samples[kind]):
            if type(r).__name__ == "frame":
                kinds.append("frame " + r.f_code.co_filename)
            elif isinstance(r, dict):
                kinds.append("dict " + ",".join(sorted(str(k) for k in list(r)[:5])))
            else:
                kinds.append(type(r).__name__)
        out[kind] = kinds
    return out


FILL = []
GAP = [0.0]


def heartbeat():
    """Sleeps 1 ms at a time and keeps the longest overshoot: a thread holding the GIL shows here."""
    last = time.perf_counter()
    while True:
        time.sleep(0.001)
        now = time.perf_counter()
        GAP[0] = max(GAP[0], now - last - 0.001)
        last = now


def fill(n):
    if not FILL:
        threading.Thread(target=heartbeat, daemon=True).start()
    FILL.extend(Blob(i) for i in range(n))


def main():
    threading.Thread(target=ticker, daemon=True).start()
    threading.Thread(target=holder, daemon=True).start()
    for cmd, answer in command_loop.commands():
        cmd = cmd.decode().strip()
        if cmd == "grow":
            GROWING.set()
            answer(b"ok")
        elif cmd == "stop":       # answers once nothing is added any more (the holder caught up)
            GROWING.clear()
            STILL.clear()
            STILL.wait(10)
            deadline = time.monotonic() + 10
            while HELD[0] < BLOBS_WANTED[0] and time.monotonic() < deadline:
                time.sleep(0.005)
            answer(b"ok")
        elif cmd == "report":
            answer(json.dumps({"made": MADE, "cache": len(CACHE), "history": len(Registry.history),
                               "handlers": len(BUS.handlers), "blobs": HELD[0],
                               "checksum": checksum(), "tracing": tracing()}).encode())
        elif cmd == "modules":
            answer(json.dumps(sorted(sys.modules)).encode())
        elif cmd.startswith("fill "):
            fill(int(cmd.split()[1]))
            answer(json.dumps({"filled": len(FILL), "tracked": len(gc.get_objects())}).encode())
        elif cmd == "gap":
            gap, GAP[0] = GAP[0], 0.0
            answer(json.dumps({"gap_ms": round(gap * 1000, 2)}).encode())
        elif cmd == "referrers":
            answer(json.dumps(referrers()).encode())


if __name__ == "__main__":
    main()
