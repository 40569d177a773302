# A target that leaks on purpose, four ways (tests/referrers.test.ts, bench/referrers.ts):
#   - a module-level cache dict that grows:           leaky._cache['session-N'] -> list of Order
#   - a list held by a class attribute:               leaky.Registry.items -> Order
#   - a closure kept by a registered callback:        leaky._listeners[0] -> on_event's cell `seen`
#   - objects kept alive by a thread's frame local:   thread "worker-1", work(), local `batch` of Job
# plus a deep chain (Deep at the bottom of 13 nested lists) and a ring of 50 RingNode.
# Sneaky objects sit beside the leaks (dict keys, list items): their __eq__, __hash__ and
# __repr__ append to a marker file once the target is armed, so a tool that runs them is caught.
# Run as a script it imports itself as `leaky` (paths start with a loaded module) and serves,
# one command per connection (command_loop):
#   arm PATH      from now on Sneaky's methods write to PATH
#   grow N        N more cache entries
#   heap N        N more small objects kept (for the bench: a heap of that size)
#   gap           the longest stretch (ms) a thread ticking every millisecond waited since the
#                 last `gap` (the first one starts the ticker): how long others held the GIL
#   report        {"results": what the leaks add up to, "referrers": the leaked objects' referrers,
#                 "ids": their ids, "objects": how many the collector tracks}
import gc
import json
import os
import sys
import threading
import time

MARKER = [None]


class Sneaky(object):
    """Every method a careless heap walker would call leaves a trace."""

    def _touch(self, what):
        if MARKER[0]:
            with open(MARKER[0], "a") as f:
                f.write(what + "\n")

    def __eq__(self, other):
        self._touch("__eq__")
        return True                      # would fool an `in` test

    def __hash__(self):
        self._touch("__hash__")
        return 0

    def __repr__(self):
        self._touch("__repr__")
        return "Sneaky()"


class Order(object):
    def __init__(self, n):
        self.n = n


class Job(object):
    __slots__ = ("n",)                   # no __dict__: held only by the worker's list

    def __init__(self, n):
        self.n = n


class Deep(object):
    pass


class RingNode(object):
    def __init__(self, n):
        self.n = n
        self.next = None


class Registry(object):
    items = []                           # a list held by a class attribute


_cache = {}                              # a module-level cache that grows
_listeners = []                          # registered callbacks
_kept = []                               # the bench's heap


def on(callback):
    _listeners.append(callback)


def make_listener():
    seen = []

    def on_event(event):
        seen.append(event)
    return on_event


def grow(n):
    start = len(_cache)
    for i in range(start, start + n):
        _cache["session-%d" % i] = [Sneaky(), Order(i), Order(i + 1)]


def grow_heap(n):
    """n more small tracked objects, in lists of 1000 (a heap spread over many containers)."""
    for start in range(0, n, 1000):
        _kept.append([[i] for i in range(start, min(n, start + 1000))])
    gc.collect()                         # settled, as in a process that has run a while


def deep(levels):
    bottom = [Deep()]
    for _ in range(levels):
        bottom = [bottom]
    return bottom


def ring(size):
    nodes = [RingNode(i) for i in range(size)]
    for a, b in zip(nodes, nodes[1:] + nodes[:1]):
        a.next = b
    return nodes[0]


def work(started):
    batch = [Job(1), Job(2), Job(3), Sneaky()]
    started.set()
    while True:
        time.sleep(0.05)
        batch[0].n += 0                  # the frame stays busy with its local


GAP = [0.0, None]                        # the longest wait seen, the ticker thread


def tick():
    last = time.perf_counter()
    while True:
        time.sleep(0.001)
        now = time.perf_counter()
        GAP[0] = max(GAP[0], now - last)
        last = now


def gap():
    if GAP[1] is None:
        GAP[1] = threading.Thread(target=tick, name="ticker", daemon=True)
        GAP[1].start()
    seen, GAP[0] = GAP[0], 0.0
    return seen * 1000


def setup():
    grow(10)
    _cache[Sneaky()] = "a sneaky key"
    Registry.items.extend([Order(100), Sneaky(), Order(101)])
    on(make_listener())
    for i in range(5):
        _listeners[0](Order(200 + i))
    started = threading.Event()
    threading.Thread(target=work, args=(started,), name="worker-1", daemon=True).start()
    started.wait()


_deep = deep(12)
_ring = ring(50)


def leaked():
    """The leaked objects whose referrers a test compares before and after."""
    jobs = [o for o in gc.get_objects() if type(o) is Job]
    seen = _listeners[0].__closure__[0].cell_contents
    return {"cache": _cache["session-7"][1], "class": Registry.items[0], "closure": seen[2],
            "frame": sorted(jobs, key=lambda j: j.n)[0]}


def referrers():
    """For each leaked object, its referrers as (type, id), sorted: the report is taken in a
    function of its own so its frame and lists are not among them."""
    objs, out = leaked(), {}
    for name in sorted(objs):
        found = gc.get_referrers(objs[name])
        out[name] = sorted("%s@%d" % (type(r).__name__, id(r)) for r in found
                           if r is not objs and type(r).__name__ != "frame")   # this report's own
    return out


def results():
    seen = _listeners[0].__closure__[0].cell_contents
    return {"cache": len(_cache), "orders": sum(e[1].n for k, e in _cache.items() if type(k) is str),
            "registry": len(Registry.items), "seen": [o.n for o in seen], "kept": sum(len(k) for k in _kept)}


def serve():
    import command_loop
    for cmd, reply in command_loop.commands(size=512):
        words = cmd.decode().split()
        if words[0] == "arm":
            MARKER[0] = words[1]
            reply(b"ok\n")
        elif words[0] == "grow":
            grow(int(words[1]))
            reply(b"ok\n")
        elif words[0] == "gap":
            reply(("%.2f\n" % gap()).encode())
        elif words[0] == "heap":
            grow_heap(int(words[1]))
            reply(b"ok\n")
        else:
            ids = dict((k, id(v)) for k, v in leaked().items())
            reply((json.dumps({"results": results(), "referrers": referrers(), "ids": ids,
                               "objects": len(gc.get_objects())}) + "\n").encode())


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import leaky                         # noqa: E402  the leaks live in the module `leaky`
    leaky.setup()
    leaky.serve()
