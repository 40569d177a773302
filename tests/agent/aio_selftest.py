#!/usr/bin/env python3
"""Self-test for agent/lib/aio.py's field reader: what `tasks` reads from tasks, loops and
threads is read as data, and no code of the target runs (no property, no __getattr__, no
method), even when a class is changed after aio first read it.

Loads aio the way the agent does (with reflect, which it requires), before anything imported
asyncio, then runs a real event loop in this interpreter.
Usage:  pythonX.Y tests/agent/aio_selftest.py [-v]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
from selfcheck import check, finish  # noqa: E402
from snippet_ctx import FakeAgent  # noqa: E402

RAN = []            # the target code that ran: must stay empty while aio reads
ARMED = []          # set while aio reads (the event loop itself may use the classes' code)


def ran(what):
    if ARMED:
        RAN.append(what)


aio = FakeAgent().lib("aio")
check("loading aio imports no asyncio", not [m for m in sys.modules if "asyncio" in m], sorted(sys.modules))

import asyncio  # noqa: E402  (after the load: the load must not import it)
import threading  # noqa: E402


class SpyTask(asyncio.Task):
    """A C task subclass whose properties record that they ran."""
    plain = "class value"

    @property
    def _state(self):
        ran("SpyTask._state")
        return asyncio.Task._state.__get__(self)

    @property
    def label(self):
        ran("SpyTask.label")
        return "label"

    def method(self):
        pass


class SpyPyTask(asyncio.tasks._PyTask):
    """A pure-Python task subclass with a property, a setter and a __getattr__."""

    @property
    def _name(self):
        ran("SpyPyTask._name")
        return "from the property"

    @_name.setter
    def _name(self, value):
        pass

    def __getattr__(self, name):
        ran("SpyPyTask.__getattr__ " + name)
        raise AttributeError(name)


class Record(object):
    pass


async def pending():
    await asyncio.sleep(60)


async def main():
    loop = asyncio.get_running_loop()
    c_task, spy, py_spy = asyncio.ensure_future(pending()), SpyTask(pending()), SpyPyTask(pending())
    await asyncio.sleep(0)
    thread = threading.current_thread()
    thread.method = "instance value"
    ARMED.append(1)
    try:
        check("C task: _state from _asyncio's C field", aio.field(c_task, "_state") == "PENDING")
        check("C task: _loop", aio.field(c_task, "_loop") is loop)
        check("C task subclass: a _state property is not run", aio.field(spy, "_state", "D") == "D")
        check("C task subclass: a property is not run", aio.field(spy, "label", "D") == "D")
        check("C task subclass: a plain class value", aio.field(spy, "plain") == "class value")
        check("C task subclass: a method is no field", aio.field(spy, "method", "D") == "D")
        check("Python task: _name property not run", aio.field(py_spy, "_name", "D") == "D")
        check("Python task: no __getattr__ for a missing name", aio.field(py_spy, "nothing", "D") == "D")
        check("Python task: _coro from the instance", aio.field(py_spy, "_coro") is not None)
        check("loop: _thread_id", aio.field(loop, "_thread_id") == threading.get_ident())
        check("loop: asyncio's own clock", aio.Asyncio().now(loop) is not None)
        check("thread: an instance value over a method", aio.field(thread, "method") == "instance value")
        check("thread: _name", aio.field(thread, "_name") == thread.name)

        record = Record()
        record.value = 1
        check("a plain instance value", aio.field(record, "value") == 1)
        Record.value = property(lambda self: ran("Record.value") or 2)
        check("a property put on the class after the first read is not run",
              aio.field(record, "value", "D") == "D")
        SpyTask.plain = property(lambda self: ran("SpyTask.plain") or 2)
        check("a property put on a C task subclass after the first read is not run",
              aio.field(spy, "plain", "D") == "D")
    finally:
        ARMED.clear()
    check("no target code ran", not RAN, RAN)
    for task in (c_task, spy, py_spy):
        task.cancel()
    await asyncio.gather(c_task, spy, py_spy, return_exceptions=True)


asyncio.run(main())
finish()
