#!/usr/bin/env python3
"""Self-test for fork() while a thread of the agent holds the engine's locks: agent/lib/instrument.py
and observe.py's after_fork_in_child(). A thread (standing for an agent thread in the middle of an
install) holds instrument's lock and a streaming probe's lock when the process forks: in the child,
where that thread does not exist, after_fork_in_child() must finish (an alarm ends a deadlock),
give the function its own code back (3.8-3.11) or leave no tool id and no event (3.12+), make the
probe inert (its queue empty, -n reached, a lock that can be taken) and leave an engine that works
(a new install and uninstall). The parent's watch goes on.

Loads the libraries the way the agent does (with what they require).
Usage:  pythonX.Y tests/agent/fork_selftest.py [-v]
"""
import json
import os
import signal
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
from selfcheck import check, finish  # noqa: E402
from snippet_ctx import FakeAgent  # noqa: E402


def work(x):
    return x + 1


ORIGINAL = work.__code__


def monitoring_state():
    mon = getattr(sys, "monitoring", None)
    if mon is None:
        return None
    return [mon.get_tool(i) for i in range(6)], [mon.get_local_events(i, ORIGINAL) for i in range(6)]


def instrumented():
    state = monitoring_state()
    return work.__code__ is not ORIGINAL if state is None else "peeka" in state[0]


def make_probe(observe):
    class Probe(observe.StreamingProbe):
        def on_enter(self, call):
            self.publish({"n": 1})
            return False
    return Probe(None, -1, 0, "fork_selftest")


def hold(locks, release):
    """An agent thread in the middle of its work at the fork: holds these locks until `release`."""
    for lock in locks:
        lock.acquire()
    release.wait()
    for lock in locks:
        lock.release()


def in_child(inst, observe, probe):
    """What the child reports, after the engine's after_fork_in_child (ended by an alarm if it hangs)."""
    signal.alarm(5)
    vars(inst)["after_fork_in_child"]()
    signal.alarm(0)
    for i in range(100):
        work(i)
    report = {"own_code": work.__code__ is ORIGINAL, "monitoring": monitoring_state(),
              "queue": len(probe.queue), "reached": probe.reached(), "probe_lock": probe.lock.acquire(False),
              "status": inst.status()}
    handle = inst.install([inst.Target("work", work, ORIGINAL, "function")], make_probe(observe))
    work(1)
    report["works_again"] = handle.calls_seen() == 1
    inst.uninstall(handle)
    report["restored_again"] = not instrumented()
    return report


def forked(inst, observe, probe):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, json.dumps(in_child(inst, observe, probe)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    data = b""
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        data += chunk
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    return json.loads(data.decode()) if data else {"status": status}


def main():
    agent = FakeAgent()
    inst, observe = agent.lib("instrument"), agent.lib("observe")
    probe = make_probe(observe)
    handle = inst.install([inst.Target("work", work, ORIGINAL, "function")], probe)
    work(1)
    check("parent: the watch sees a call", len(probe.queue) == 1 and instrumented())

    release = threading.Event()
    holder = threading.Thread(target=hold, args=([vars(inst)["_lock"], probe.lock], release))
    holder.start()
    while not probe.lock.locked():
        pass
    report = forked(inst, observe, probe)
    release.set()
    holder.join()

    check("child: after_fork_in_child finished with the locks held by a thread that is gone",
          "own_code" in report, report)
    check("child: the function's own code", report.get("own_code") is True, report)
    if sys.version_info >= (3, 12):
        check("child: no tool id, no local event", report.get("monitoring") == [[None] * 6, [0] * 6], report)
    check("child: the probe is inert (queue empty, -n reached, a free lock)",
          (report.get("queue"), report.get("reached"), report.get("probe_lock")) == (0, True, True), report)
    check("child: nothing instrumented", report.get("status") == [], report)
    check("child: the engine works again (install, a call seen, uninstall restores)",
          report.get("works_again") is True and report.get("restored_again") is True, report)

    work(2)
    check("parent: the watch goes on after the fork", len(probe.queue) == 2 and instrumented())
    inst.uninstall(handle)
    check("parent: uninstalled", not instrumented() and work.__code__ is ORIGINAL)
    finish()


if __name__ == "__main__":
    main()
