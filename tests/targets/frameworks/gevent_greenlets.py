# A gevent process (gevent from the framework environment, not monkey-patched) with a few
# greenlets in known states, for `peeka tasks`:
#   sleeper  gevent.sleep(600) in a loop          -> blocked
#   waiter   waits on an Event nobody sets        -> blocked
#   later    spawn_later(600): scheduled to start -> ready
#   counter  results[i] = i * i % 97, then gevent.sleep(0.005)
# The main greenlet serves a control socket (gevent's own): "ready <pid> <port>", then each
# connection gets {"results": [...]}.
import json
import os

import gevent
import gevent.event
import gevent.socket

results = []


def sleeper():
    while True:
        gevent.sleep(600)


def waiter(event):
    event.wait()


def counter():
    i = 0
    while True:
        results.append(i * i % 97)
        i += 1
        gevent.sleep(0.005)


def spawn(name, fn, *args):
    g = gevent.spawn(fn, *args)
    g.name = name
    return g


def main():
    spawn("sleeper", sleeper)
    spawn("waiter", waiter, gevent.event.Event())
    spawn("counter", counter)
    later = gevent.spawn_later(600, sleeper)
    later.name = "later"
    srv = gevent.socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    gevent.sleep(0.05)
    print("ready %d %d" % (os.getpid(), srv.getsockname()[1]), flush=True)
    while True:
        conn, _ = srv.accept()
        try:
            conn.recv(64)
            conn.sendall((json.dumps({"results": list(results)}) + "\n").encode())
        finally:
            conn.close()


if __name__ == "__main__":
    main()
