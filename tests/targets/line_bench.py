# Target for bench/line.ts. Commands on its TCP socket (one per connection):
#   hits N    ns per iteration of linebenchmod.hits(N) (the probed line runs every iteration)
#   rest N    ns per iteration of linebenchmod.rest(N) (the probed line runs once; the others not)
#   calls N   ns per call of linebenchmod.tiny (for a watch next to it)
import itertools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import command_loop  # noqa: E402
import linebenchmod  # noqa: E402


def per_iteration(fn, n):
    t0 = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - t0) / n


def per_call(n):
    tiny = linebenchmod.tiny
    t0 = time.perf_counter_ns()
    for _ in itertools.repeat(None, n):
        tiny(1, 2)
    return (time.perf_counter_ns() - t0) / n


for data, send in command_loop.commands():
    what, n = data.decode().split()
    if what == "calls":
        result = per_call(int(n))
    else:
        result = per_iteration(getattr(linebenchmod, what), int(n))
    send(("%.1f" % result).encode())
