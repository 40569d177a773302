# A real target for peeka's tests. Shapes:
#   idle  - every thread blocked in a system call: the main thread in accept(),
#           a worker in time.sleep(). Each connection gets one JSON report line
#           about the process's own state (proves accept() still works).
#   busy  - the main thread in a pure-Python CPU loop printing deterministic
#           results ("chunk <i> <value>"); `reference N` prints the first N.
#   quiet - like idle, but no thread ever wakes up by itself: the worker waits
#           on a lock forever (a server between requests).
#   server- the main thread in accept(), a worker running Python all the time.
#   stuck - like idle, plus a worker that, when poked ("stuck" on the socket),
#           holds the GIL inside one long C call (sum over a range) for ~SECONDS.
#   nobody- like idle, after dropping root to uid/gid 65534 (started by root): a target whose
#           user is not the one attaching. What the agent imports is imported first (the
#           interpreter's files may not be readable by that user).
import json
import os
import sys
import threading
import time

import command_loop


def chunk_value(i):
    # Pure Python work whose result is known in advance.
    acc = i
    for k in range(200000):
        acc = (acc * 1103515245 + 12345 + k) % 2147483647
    return acc


def report():
    return {
        "pid": os.getpid(),
        "threads": threading.active_count(),
        "frames": len(sys._current_frames()),
        "peeka_agent": hasattr(sys, "_peeka_agent"),
        "thread_names": sorted(t.name for t in threading.enumerate()),
    }


def calibrated_c_call(seconds):
    # Find n such that sum(range(n)) takes about `seconds`, then run it once.
    n = 1 << 16
    while True:
        t0 = time.perf_counter()
        sum(range(n))
        dt = time.perf_counter() - t0
        if dt > 0.05:
            break
        n *= 2
    print("stuck-start", flush=True)
    sum(range(int(n * seconds / dt)))
    print("stuck-end", flush=True)


def sleeper():
    while True:
        time.sleep(0.2)


def blocked_forever():
    lock = threading.Lock()
    lock.acquire()
    lock.acquire()


def spin():
    while True:
        chunk_value(1)


def serve(shape):
    for cmd, reply in command_loop.commands():
        cmd = cmd.strip()
        if cmd.startswith(b"stuck") and shape == "stuck":
            seconds = float(cmd.split()[1]) if len(cmd.split()) > 1 else 2.5
            threading.Thread(target=calibrated_c_call, args=(seconds,), name="c-call").start()
            reply(b"ok\n")
        else:
            reply((json.dumps(report()) + "\n").encode())


def busy(limit):
    print("ready %d 0" % os.getpid(), flush=True)
    i = 0
    while limit is None or i < limit:
        print("chunk %d %d" % (i, chunk_value(i)), flush=True)
        i += 1


def drop_to_nobody():
    # Every module the agent and the thread command import, found in their sources.
    import glob
    import importlib
    import re
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    sources = glob.glob(os.path.join(root, "agent", "*.py"))  # every part of the agent's source
    sources += [os.path.join(root, "agent", "lib", "threads.py"), os.path.join(root, "commands", "thread", "snippet.py")]
    for path in sources:
        with open(path) as f:
            for name in re.findall(r"^\s*import (\w+)", f.read(), re.M):
                importlib.import_module(name)
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


if __name__ == "__main__":
    shape = sys.argv[1]
    if shape == "nobody":
        drop_to_nobody()
        shape = "idle"
    if shape in ("idle", "stuck"):
        name = os.environ.get("TARGET_THREAD_NAME", "sleeper")  # a hostile name, for one test
        threading.Thread(target=sleeper, name=name, daemon=True).start()
        serve(shape)
    elif shape == "quiet":
        threading.Thread(target=blocked_forever, name="waiter", daemon=True).start()
        serve(shape)
    elif shape == "server":
        threading.Thread(target=spin, name="spinner", daemon=True).start()
        serve(shape)
    elif shape == "busy":
        busy(None)
    elif shape == "reference":
        for i in range(int(sys.argv[2])):
            print("chunk %d %d" % (i, chunk_value(i)))
