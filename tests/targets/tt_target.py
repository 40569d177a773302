# Target for tt's tests and bench: calls ttmod's functions on request. Commands (one per
# connection, tests/targets/command_loop.py):
#   price N          N calls of TILL.price({"cost": i}, 2, discount=1)
#   fill             TILL.fill(["a"]), then the caller changes the list too; replies with it
#   fail N           N calls of TILL.fail(i), each raising ValueError
#   grow             TILL.grow(1); replies with the till's n
#   till             {"n": the till's n, "alive": whether anything still holds it} (the last
#                    one dropped, else the first)
#   drop             replaces the till: the old one is then held only by others (a weak ref here)
#   ingest N MB      N calls of ingest() with a fresh argument of MB megabytes each
#   steady N         ns per call of small(1, 2) over N calls, allocating nothing
import gc
import itertools
import json
import os
import sys
import time
import weakref

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import command_loop  # noqa: E402
import ttmod  # noqa: E402

TILL = [ttmod.Till()]
WEAK_TILL = weakref.ref(TILL[0])


def steady(n):
    small = ttmod.small
    t0 = time.perf_counter_ns()
    for _ in itertools.repeat(None, n):
        small(1, 2)
    return (time.perf_counter_ns() - t0) / n


def outcome(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        return "EXC:%s" % type(e).__name__


def handle(words):
    global WEAK_TILL
    what, n = words[0], int(words[1]) if len(words) > 1 else 1
    if what == "price":
        return [TILL[0].price({"cost": i}, 2, discount=1) for i in range(n)]
    if what == "fill":
        items = ["a"]
        TILL[0].fill(items)
        items.append("added after")
        return items
    if what == "fail":
        return [outcome(TILL[0].fail, i) for i in range(n)]
    if what == "grow":
        return TILL[0].grow(1)
    if what == "till":
        gc.collect()
        till = WEAK_TILL()
        return {"n": till.n if till is not None else None, "alive": till is not None}
    if what == "drop":
        WEAK_TILL = weakref.ref(TILL[0])
        TILL[:] = [ttmod.Till()]
        return "ok"
    if what == "ingest":
        return sum(ttmod.ingest(b"x" * (int(words[2]) << 20)) for _ in range(n))
    if what == "steady":
        return steady(n)
    return "unknown command"


for data, send in command_loop.commands():
    send((json.dumps(handle(data.decode().split())) + "\n").encode())
