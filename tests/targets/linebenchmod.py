# Functions bench/line.ts probes (loaded by line_bench.py).
import itertools


def hits(n):
    x = 0
    for _ in itertools.repeat(None, n):
        x = x + 1  # PROBED: runs every iteration
    return x


def rest(n):
    x = 0  # PROBED: runs once per call
    for _ in itertools.repeat(None, n):
        x = x + 1
    return x


def tiny(a, b):
    return a
