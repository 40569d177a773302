# A busy target for `top` at high rates: argv[1] is "THREADS[:BUSY]" (default 1:1): BUSY of the
# THREADS threads call spin_leaf() without pause, the others wait on an Event (as a server's
# idle workers do; 50 threads all busy on 2 cores starve the agent's own thread of the GIL).
# Prints "ready <pid> <port>"; on its TCP socket (one command per connection):
#   rate S    calls per second over the next S seconds, all threads together (the target's
#             own work rate, to compare with and without a sampler)
import itertools
import json
import os
import socket
import sys
import threading
import time

CHUNK = 10000
done = []  # chunks finished, per thread (a list index written by one thread only)


def spin_leaf(a, b):
    return a + b  # small ints: the loop allocates nothing


def spin(slot):
    while True:
        for _ in itertools.repeat(None, CHUNK):
            spin_leaf(1, 2)
        done[slot] += 1


def idle_worker(never):
    never.wait()


def rate(seconds):
    before, t0 = sum(done), time.perf_counter()
    time.sleep(seconds)
    return (sum(done) - before) * CHUNK / (time.perf_counter() - t0)


def main():
    shape = (sys.argv[1] if len(sys.argv) > 1 else "1").split(":")
    threads, busy = int(shape[0]), int(shape[-1]) if len(shape) > 1 else 1
    done.extend([0] * busy)
    for slot in range(busy):
        threading.Thread(target=spin, args=(slot,), name="spin-%d" % slot, daemon=True).start()
    never = threading.Event()
    for n in range(threads - busy):
        threading.Thread(target=idle_worker, args=(never,), name="idle-%d" % n, daemon=True).start()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    print("ready %d %d" % (os.getpid(), server.getsockname()[1]), flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            words = conn.makefile().readline().split()
            reply = {"per_s": rate(float(words[1]))} if words[:1] == ["rate"] else {"error": words}
            conn.sendall(json.dumps(reply).encode())


main()
