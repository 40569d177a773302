# The interpreter's own threads, locks, sleep, poll, close and sockets, taken before gevent or
# eventlet can patch them: everything the agent uses, and the built-in library `real` that
# snippets require. First part of the agent's source (agent/embed.ts joins the parts).
import _socket
import _thread
import os
import select
import sys
import time


class _Event(object):
    """threading.Event look-alike (set/is_set/wait/clear) built on _thread locks."""

    def __init__(self):
        self._flag = False
        self._mutex = _REAL.allocate_lock()
        self._gate = _REAL.allocate_lock()
        self._gate.acquire()  # held while unset; set() opens it for waiters

    def is_set(self):
        return self._flag

    def set(self):
        with self._mutex:
            if not self._flag:
                self._flag = True
                self._gate.release()

    def clear(self):
        with self._mutex:
            if self._flag:
                self._gate.acquire()
                self._flag = False

    def wait(self, timeout=None):
        if self._flag:
            return True
        if timeout is None:
            got = self._gate.acquire()
        else:
            got = self._gate.acquire(True, min(max(0.0, float(timeout)), _thread.TIMEOUT_MAX))
        if got:
            self._gate.release()  # pass the open gate on to the next waiter
        return self._flag


# gevent's and eventlet's monkey-patching replace module attributes (_thread.start_new_thread,
# allocate_lock and get_ident, time.sleep, select.poll, socket.socket, os.close) with cooperative
# versions: an agent reaching them through their modules would run as greenlets of the target's
# hub, and one greenlet that never yields would starve it. So the agent takes the interpreter's
# own C functions once, when its source runs (from the patcher's saved originals when the target
# is already patched), and keeps them: a patch made after the attach replaces module attributes,
# not these references, and a lock or socket already made stays what it is.
_BUILTIN = type(len)


def _gevent_saved():
    """{module name: {attribute: original}} kept by gevent's monkey module, if it was imported."""
    for name in ("gevent.monkey._state", "gevent.monkey"):
        module = sys.modules.get(name)
        saved = vars(module).get("saved") if module is not None else None  # no module __getattr__
        if isinstance(saved, dict):
            return saved
    return {}


def _original(module, name):
    """module.name as the interpreter made it (a C function), or the current one if none is found."""
    current = getattr(module, name, None)
    if type(current) is _BUILTIN:
        return current
    saved = _gevent_saved().get(module.__name__)
    candidate = saved.get(name) if isinstance(saved, dict) else None
    patcher = sys.modules.get("eventlet.patcher")
    if type(candidate) is not _BUILTIN and patcher is not None:
        try:  # eventlet keeps no originals: it re-imports an unpatched copy of the module
            candidate = vars(patcher.original(module.__name__)).get(name)
        except Exception:
            candidate = None
    return candidate if type(candidate) is _BUILTIN else current


class _Real(object):
    """The interpreter's own threads, locks, sleep, poll, close and sockets: all the agent uses,
    and what snippets must use on the agent's threads (ctx.agent.real), where a cooperative one
    would wait on the target's hub."""

    def __init__(self):
        self.start_new_thread = _original(_thread, "start_new_thread")
        self.allocate_lock = _original(_thread, "allocate_lock")
        self.get_ident = _original(_thread, "get_ident")
        self.get_native_id = _original(_thread, "get_native_id")
        self.sleep = _original(time, "sleep")
        self.poll = _original(select, "poll")
        self.close = _original(os, "close")
        # the C type is never patched (socket.socket.accept would wrap in whatever socket.socket is)
        self.socket = _socket.socket
        self.timeout = _socket.timeout
        self.Event = _Event
        # what could not be had unpatched (hello reports it; nothing with gevent or eventlet)
        self.still_patched = sorted(k for k, v in vars(self).items()
                              if callable(v) and not isinstance(v, type) and type(v) is not _BUILTIN)


_REAL = _Real()
