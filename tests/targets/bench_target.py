# Target for the watch benchmark: a small function, timed in a tight loop on
# request. Commands on its TCP socket (one per connection):
#   time N        ns per call of small() over N calls
#   steady N      ns per call of small(1, 2) over N calls, allocating nothing (see loop_steady)
#   chunks N S    for S seconds, [end time, ns per call] of each N steady calls (to compare
#                 the chunks run while something else happened with those run without)
#   naive N       the same through a decorator that JSON-serialises every call (baseline)
#   burst N       N calls as fast as possible (observation throughput)
#   stamp N MS    N calls of small(time.time(), 0), MS ms apart (call-to-line latency)
#   tree N        ns per call of hundred() (a call with 100 inner calls) over N calls
#   classes N     defines N more classes (with two methods each) in benchmod (for sc '*')
#   contend N     while another thread calls hundred() without pause, this thread's CPU ns
#                 per call of small() over N calls (how much a trace there costs here)
import itertools
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmod  # noqa: E402


def naive(fn):
    sink = []

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        sink.append(json.dumps({"func": fn.__name__, "args": args, "kwargs": kwargs, "result": result,
                                "ms": (time.perf_counter() - t0) * 1000}))
        if len(sink) > 1000:
            del sink[:]
        return result
    return wrapper


def loop(fn, n):
    t0 = time.perf_counter_ns()
    for i in range(n):
        fn(i, 1)
    return (time.perf_counter_ns() - t0) / n


def loop_steady(fn, n):
    # Neither the loop counter (itertools.repeat) nor 1 + 2 allocates, so the speed does not
    # depend on where the allocator's free blocks happen to lie: on 3.12 a loop that
    # allocates an int per call swings by up to 15% with that alone (e.g. after an attach).
    t0 = time.perf_counter_ns()
    for _ in itertools.repeat(None, n):
        fn(1, 2)
    return (time.perf_counter_ns() - t0) / n


def timed(fn, n):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - t0) / n


def contend(n):
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            benchmod.hundred()
    other = threading.Thread(target=busy, name="traced")
    other.start()
    try:
        t0 = time.thread_time_ns()
        for i in range(n):
            benchmod.small(i, 1)
        return (time.thread_time_ns() - t0) / n
    finally:
        stop.set()
        other.join()


def main():
    naive_small = naive(benchmod.small)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    print("ready %d %d" % (os.getpid(), srv.getsockname()[1]), flush=True)
    while True:
        conn, _ = srv.accept()
        words = conn.recv(256).decode().split()
        if words[0] == "time":
            reply = loop(benchmod.small, int(words[1]))
        elif words[0] == "steady":
            reply = loop_steady(benchmod.small, int(words[1]))
        elif words[0] == "chunks":
            chunks, until = [], time.time() + float(words[2])
            while time.time() < until:
                ns = loop_steady(benchmod.small, int(words[1]))
                chunks.append([time.time(), ns])
            reply = chunks
        elif words[0] == "naive":
            reply = loop(naive_small, int(words[1]))
        elif words[0] == "burst":
            reply = loop(benchmod.small, int(words[1]))
        elif words[0] == "tree":
            reply = timed(benchmod.hundred, int(words[1]))
        elif words[0] == "classes":
            for i in range(int(words[1])):
                name = "Generated%d" % len(vars(benchmod))
                setattr(benchmod, name, type(name, (object,), {"__module__": "benchmod",
                                                               "a": lambda self: 1, "b": lambda self: 2}))
            reply = len(vars(benchmod))
        elif words[0] == "contend":
            reply = contend(int(words[1]))
        elif words[0] == "stamp":
            for _ in range(int(words[1])):
                benchmod.small(time.time(), 0)
                time.sleep(float(words[2]) / 1000)
            reply = "done"
        conn.sendall((json.dumps(reply) + "\n").encode())
        conn.close()


if __name__ == "__main__":
    main()
