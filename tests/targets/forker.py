# A target that forks on command, for tests/fork.test.ts and bench/fork.ts. Standard library only.
# Commands (one per connection, see command_loop.py), each answered with one JSON line:
#   report          this process: its own state() (without the cost measurement)
#   call N          calls work() N times here (what the parent's watch sees)
#   fork            os.fork(): the child calls work() many times, then reports state()
#   fork_traced     fork_traced(): os.fork() inside a call that a trace may watch; the child's state()
#   keep            os.fork(): the child calls work() every 10 ms until its parent is gone;
#                   answers its pid
#   pool METHOD     a multiprocessing Pool (fork, spawn or forkserver) of 2 workers, each reporting
#                   state()
#   exec            subprocess.run([PYTHON, this file, "--state"]): the exec'd child's state()
#   forks N         N times os.fork() + waitpid() (the child exits at once): ns per fork, the
#                   median ns from fork() to the child's first line, and of peeka's at-fork hook
import json
import os
import subprocess
import sys
import time
import warnings

import command_loop

# 3.12+ warns (DeprecationWarning, shown for __main__) when a process with several threads forks:
# the agent's threads count. A forking server does so from its own modules, where it is not shown.
warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)


def work(x):
    return x + 1


def plain(x):
    return x + 1


# The time the at-fork hooks registered after this one (peeka's) take in a child: from this mark,
# run first, to the one forks() registers once peeka's hook is there (after-fork hooks run in the
# order they were registered).
_marks = {}


def _mark(name):
    def mark():
        _marks[name] = time.perf_counter_ns()
    return mark


os.register_at_fork(after_in_child=_mark("first"))
# What starts this interpreter (a launcher script for some builds, where sys.executable is the bare
# binary that cannot start alone): for exec and the spawn/forkserver pools.
PYTHON = os.environ.get("FORKER_PYTHON") or sys.executable
WORK_CODE = work.__code__    # taken before any attach: a child must run exactly this code
CALLS = 20000


def per_call_ns(*funcs):
    """Each function's best of 15 rounds of CALLS calls, the rounds interleaved (a busy moment of
    the machine hits both alike; on a loaded 2-core machine 7 rounds were once not enough)."""
    best = [10 ** 18] * len(funcs)
    for _ in range(15):
        for k, func in enumerate(funcs):
            t0 = time.perf_counter_ns()
            for i in range(CALLS):
                func(i)
            best[k] = min(best[k], time.perf_counter_ns() - t0)
    return [b / CALLS for b in best]


def socket_inodes():
    """The inodes of the sockets this process has open."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            found.append(int(link[8:-1]))
    return found


def monitoring_state():
    """3.12+: the name of each sys.monitoring tool id, and the local events on work's code."""
    mon = getattr(sys, "monitoring", None)
    if mon is None:
        return {}
    return {"tools": [mon.get_tool(i) for i in range(6)],
            "local_events": [mon.get_local_events(i, WORK_CODE) for i in range(6)]}


def state(measure=True):
    report = {"pid": os.getpid(), "ppid": os.getppid(), "own_code": work.__code__ is WORK_CODE,
              "agent": hasattr(sys, "_peeka_agent"), "frames": len(sys._current_frames()),
              "tasks": len(os.listdir("/proc/self/task")), "sockets": socket_inodes()}
    report.update(monitoring_state())
    if measure:
        report["watched_ns"], report["unwatched_ns"] = per_call_ns(work, plain)
    return report


def pool_worker(_):
    return state()


def forked(run):
    """Runs run() in a forked child and returns what it wrote (JSON), once the child has exited."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            os.write(write_end, json.dumps(run()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        data = os.read(read_end, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(read_end)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


def fork_traced():
    """A call that forks (trace it): its child reports state() and whether a profile function is
    still set on its thread once it has made calls (the trace's removes itself at its next event)."""
    return forked(lambda: dict(state(measure=False), profile=sys.getprofile() is not None))


def keep(connection):
    pid = os.fork()
    if pid != 0:
        return {"pid": pid}
    connection.close()       # the parent answers it: our copy must not hold it open
    parent = os.getppid()
    try:
        while os.getppid() == parent:
            work(1)
            time.sleep(0.01)
    finally:
        os._exit(0)


def pool(method):
    import multiprocessing
    context = multiprocessing.get_context(method)
    context.set_executable(PYTHON)
    with context.Pool(2) as workers:
        return {"workers": workers.map(pool_worker, range(2), chunksize=1)}


def exec_child():
    out = subprocess.run([PYTHON, os.path.abspath(__file__), "--state"], stdout=subprocess.PIPE,
                         check=True)
    return json.loads(out.stdout)


def forks(n):
    """n times os.fork() + waitpid() of a child that exits at once: the mean of the whole, the
    median time from fork() to the child's first line, and the median time of peeka's at-fork
    hook (0 while it is not registered)."""
    import mmap
    import struct
    if hasattr(sys, "_peeka_at_fork") and not _marks.get("late"):
        _marks["late"] = True
        os.register_at_fork(after_in_child=_mark("last"))
    shared = mmap.mmap(-1, 16)      # MAP_SHARED: the child's writes are seen here
    starts, hooks = [], []
    began = time.perf_counter_ns()
    for _ in range(n):
        t0 = time.perf_counter_ns()
        pid = os.fork()
        if pid == 0:
            hook = _marks["last"] - _marks["first"] if "last" in _marks else 0
            shared[:] = struct.pack("qq", time.perf_counter_ns() - t0, hook)
            os._exit(0)
        os.waitpid(pid, 0)
        start, hook = struct.unpack("qq", shared[:])
        starts.append(start)
        hooks.append(hook)
    return {"fork_ns": (time.perf_counter_ns() - began) / n, "child_start_ns": sorted(starts)[n // 2],
            "hook_ns": sorted(hooks)[n // 2]}


def answer(words, connection):
    verb, arg = words[0], words[1] if len(words) > 1 else None
    if verb == "call":
        return {"calls": sum(work(i) * 0 + 1 for i in range(int(arg)))}
    if verb == "fork":
        return forked(state)
    if verb == "fork_traced":
        return fork_traced()
    if verb == "keep":
        return keep(connection)
    if verb == "pool":
        return pool(arg)
    if verb == "exec":
        return exec_child()
    if verb == "forks":
        return forks(int(arg))
    return state(measure=False)


def main():
    if sys.argv[1:] == ["--state"]:
        print(json.dumps(state(measure=False)))
        return
    for cmd, reply in command_loop.commands():
        reply((json.dumps(answer(cmd.decode().split(), reply.__self__)) + "\n").encode())


if __name__ == "__main__":
    main()
