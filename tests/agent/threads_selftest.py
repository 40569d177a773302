#!/usr/bin/env python3
"""Self-test for agent/lib/threads.py's readers of modules and thread records (used by thread,
top, trace and tasks): a lazily loaded module (importlib.util.LazyLoader) is not loaded by
them, a module global that is a proxy is never asked its __class__, and a thread record's
own attribute lookup is never run.

Loads threads the way the agent does (with reflect, which it requires).
Usage:  pythonX.Y tests/agent/threads_selftest.py [-v]
"""
import importlib.util
import os
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
from selfcheck import check, finish  # noqa: E402
from snippet_ctx import FakeAgent  # noqa: E402

RAN = []            # the target code that ran: must stay empty


class Proxy(object):
    """A global like a framework's request proxy: asking its __class__ runs code and raises."""

    @property
    def __class__(self):
        RAN.append("Proxy.__class__")
        raise RuntimeError("working outside of a request")


proxy = Proxy()


def lazily_loaded_module(folder):
    """A module in sys.modules whose code runs on the first attribute access to it."""
    with open(os.path.join(folder, "peeka_lazy_module.py"), "w") as f:
        f.write("RAN.append('the lazy module was loaded')\n")
    sys.path.insert(0, folder)
    spec = importlib.util.find_spec("peeka_lazy_module")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["peeka_lazy_module"] = module
    spec.loader.exec_module(module)
    sys.modules["builtins"].RAN = RAN      # where the module's code would record that it ran


ARMED = []          # set while threads reads (threading itself uses the records' attributes)


class Worker(threading.Thread):
    def __getattribute__(self, name):
        if ARMED:
            RAN.append("Worker.__getattribute__ " + name)
        return threading.Thread.__getattribute__(self, name)


def function():
    pass


with tempfile.TemporaryDirectory() as folder:
    lazily_loaded_module(folder)
    threads = FakeAgent().lib("threads")
    check("code_name of a function", threads.code_name(function.__code__) == "__main__.function",
          threads.code_name(function.__code__))
    check("no module has a file that is nowhere", threads.module_of_file("/nowhere/at/all.py") is None)
    done = threading.Event()
    worker = Worker(target=done.wait, name="worker-1")
    worker.start()
    frames = dict.fromkeys([threading.get_ident(), worker.ident])
    ARMED.append(1)
    table = threads.thread_table(frames)
    ARMED.clear()
    done.set()
    worker.join()
    check("the main thread is MainThread", table[threading.get_ident()]["name"] == "MainThread", table)
    check("a thread's name from its record", table[worker.ident]["name"] == "worker-1", table)
    check("no target code ran (lazy module, proxy, thread record)", not RAN, RAN)
    del sys.modules["peeka_lazy_module"]
finish()
