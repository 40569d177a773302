#!/usr/bin/env python3
"""Self-test for the readers of modules and thread records: agent/lib/threads.py (used by thread,
top, trace and tasks), names.py and classes.py (watch/stack/trace patterns, sc, sm, inspect), and
the snippets of sc, thread, top and logger. A lazily loaded module (importlib.util.LazyLoader) is
not loaded by them, a module's __getattr__ never runs, a module global or a sys.modules entry
that is a proxy is never asked its __class__, and a thread record's or a logger's own attribute
lookup, properties, methods and __repr__ are never run.

Loads the libraries and snippets the way the agent does (with what they require).
Usage:  pythonX.Y tests/agent/threads_selftest.py [-v]
"""
import importlib.util
import logging
import os
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
from selfcheck import check, finish  # noqa: E402
from snippet_ctx import FakeAgent, FakeCtx, load_snippet  # noqa: E402

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


class Meta(type):
    def __getattribute__(cls, name):
        if ARMED:
            RAN.append("Meta.__getattribute__ " + name)
        return type.__getattribute__(cls, name)


class Callable(metaclass=Meta):
    def __call__(self):
        pass


def module_with_getattr():
    """A module (no __file__) whose __getattr__ records every name it is asked for."""
    module = type(sys)("peeka_getattr_module")
    module.__getattr__ = lambda name: RAN.append("module __getattr__ " + name) or 0
    module.handler = Callable()
    module.Callable = Callable
    Callable.__module__ = "peeka_getattr_module"
    sys.modules["peeka_getattr_module"] = module


def resolution(names, pattern):
    try:
        return [f.name for f in names.resolve(pattern)]
    except names.ResolveError as e:
        return e.code, str(e)


def check_names(agent):
    """Name resolution and the module scan of sc/sm read modules and classes as stored."""
    names, classes = agent.lib("names"), agent.lib("classes")
    ARMED.append(1)
    lazy = resolution(names, "peeka_lazy_module.handler")
    handler = resolution(names, "peeka_getattr_module.handler")
    found = classes.loaded_classes()
    ARMED.clear()
    check("a global of a lazily loaded module is not found (it is not loaded)",
          lazy[0] == "NOT_FOUND" and "'peeka_lazy_module.handler' does not exist" in lazy[1], lazy)
    check("a callable object is refused with its class's name", handler == (
        "NOT_INSTRUMENTABLE", "peeka_getattr_module.handler is a callable Callable object; watch"
        " peeka_getattr_module.Callable.__call__ instead"), handler)
    check("sc/sm find the classes of loaded modules", Callable in found and Worker in found)
    location = load_snippet("sc", agent)["location"]
    ARMED.append(1)
    where = location(classes, Callable)
    ARMED.clear()
    check("sc: a class of a module without a file has none, and a line", where[0] is None
          and where[1] in (Callable.__call__.__code__.co_firstlineno - 1, Callable.__call__.__code__.co_firstlineno),
          where)


class Claimed(threading.Thread):
    """A thread whose class says it is threading's own, with a name property and a __repr__."""
    __module__ = "threading"

    @property
    def name(self):
        if ARMED:
            RAN.append("Claimed.name")
        return self._name

    def __repr__(self):
        if ARMED:
            RAN.append("Claimed.__repr__")
        return "<Claimed>"


def frame_inside_threading(thread):
    """The thread's current frame once it waits inside threading.py (None after 5 s)."""
    for _ in range(500):
        frame = sys._current_frames().get(thread.ident)
        if frame is not None and os.path.basename(frame.f_code.co_filename) == "threading.py":
            return frame
        threading.Event().wait(0.01)
    return None


def enter(condition):
    with condition:
        pass


def check_thread_blocked_on(agent):
    """thread: what a blocked thread waits for, read without the waited-for object's code."""
    blocked_on = load_snippet("thread", agent)["_blocked_on"]
    done = threading.Event()
    joined = Claimed(target=done.wait, name="joined-1")
    joined.start()
    joiner = threading.Thread(target=lambda: joined.join())   # a frame outside threading.py
    joiner.start()
    condition = threading.Condition(threading._PyRLock())
    condition.acquire()
    waiter = threading.Thread(target=enter, args=(condition,))
    waiter.start()
    try:
        ARMED.append(1)
        joining = blocked_on(frame_inside_threading(joiner))
        waiting = blocked_on(frame_inside_threading(waiter))
        ARMED.clear()
    finally:
        done.set()
        condition.release()
        for t in (joined, joiner, waiter):
            t.join()
    check("thread: a join names the joined thread", joining["joining"] == "joined-1"
          and joining["kind"] == "Claimed.join" and "threading.Claimed object at" in joining["object"], joining)
    check("thread: a Python RLock's owner", waiting.get("lock_owner") == threading.get_ident(), waiting)


def check_top_names(agent):
    """top: the names sent every refresh (modules by file; qualnames before 3.11)."""
    update = load_snippet("top", agent)["Names"](FakeCtx(agent)).update()
    check("top: a module's file", update["modules"].get(__file__) == "__main__", update["modules"].get(__file__))


class LoudLogger(logging.Logger):
    def getEffectiveLevel(self):
        RAN.append("LoudLogger.getEffectiveLevel")
        return logging.Logger.getEffectiveLevel(self)


class StreamWrapper(object):
    """A stream wrapper as colorama makes them: everything else goes through __getattr__."""

    def __getattr__(self, name):
        RAN.append("StreamWrapper.__getattr__ " + name)
        raise AttributeError(name)


def check_logger(agent):
    """logger: listing reads loggers and handlers as stored."""
    logger = LoudLogger("peeka_selftest.loud", logging.INFO)
    logger.parent = logging.getLogger()
    logger.addHandler(logging.StreamHandler(StreamWrapper()))
    logger.addHandler(logging.StreamHandler(sys.stderr))
    logging.Logger.manager.loggerDict[logger.name] = logger
    try:
        listed = load_snippet("logger", agent)["run"](FakeCtx(agent), {"pattern": "peeka_selftest.*"})
    finally:
        del logging.Logger.manager.loggerDict[logger.name]
    check("logger: levels and handlers as logging has them", listed["loggers"] == [{
        "name": "peeka_selftest.loud", "level": "INFO", "level_num": 20, "effective_level": "INFO",
        "effective_level_num": 20, "propagate": True, "disabled": False,
        "handlers": [{"type": "StreamHandler", "level": "NOTSET"},
                     {"type": "StreamHandler", "level": "NOTSET", "target": "<stderr>"}]}], listed)


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
    module_with_getattr()
    agent = FakeAgent()
    for step in (check_names, check_thread_blocked_on, check_top_names, check_logger):
        step(agent)
        check("no target code ran in %s" % step.__name__, not RAN, RAN)
        del RAN[:]
    del sys.modules["peeka_lazy_module"], sys.modules["peeka_getattr_module"]
finish()
