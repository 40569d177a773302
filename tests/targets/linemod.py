# Functions whose lines tests/line.test.ts probes (loaded by line_target.py).
import sys


def accumulate(n):
    total = 0
    for i in range(n):
        total += i  # LOOP BODY
    return total


def slow_loop(n, pause):
    import time
    for step in range(n):
        time.sleep(pause)  # SLOW BODY
    return sys.gettrace()


def countdown(n):
    while n > 0:
        yield n  # GEN BODY
        n -= 1
