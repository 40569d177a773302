# A busy target for `top` at high rates: N threads (argv[1], default 1) each call spin_leaf()
# without pause. Prints "ready <pid> <port>"; on its TCP socket (one command per connection):
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


def rate(seconds):
    before, t0 = sum(done), time.perf_counter()
    time.sleep(seconds)
    return (sum(done) - before) * CHUNK / (time.perf_counter() - t0)


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    done.extend([0] * threads)
    for slot in range(threads):
        threading.Thread(target=spin, args=(slot,), name="spin-%d" % slot, daemon=True).start()
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
