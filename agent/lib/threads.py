# peeka agent library "threads": what a thread is doing and where, judged from its
# frames without running any of the target's code (shared by thread, top and trace).
import _thread
import linecache
import os
import re
import sys

REQUIRES = ("reflect",)

# The innermost Python function, or the call its current line makes into C.
_TIMED_NAME = re.compile(r"sleep")
_TIMED_CALL = re.compile(r"\bsleep\(")
_WAITING_NAME = re.compile(r"^_*(wait|acquire|accept|recv|read|select|poll)|^(get|join)$")
_WAITING_CALL = re.compile(r"\.(wait|acquire|accept|recv\w*|read\w*|poll|get|join)\(|\bselect\(|\binput\(")


def code_line(filename, lineno):
    """The source line, read with linecache and no module globals (no loader runs)."""
    if not filename or not lineno:
        return None
    try:
        return linecache.getline(filename, lineno).strip() or None
    except Exception:
        return None


def state_of(function, line):
    """RUNNABLE, WAITING or TIMED_WAITING, from the innermost function and its source line."""
    line = line or ""
    if _TIMED_NAME.search(function) or _TIMED_CALL.search(line):
        return "TIMED_WAITING"
    if _WAITING_NAME.search(function) or _WAITING_CALL.search(line):
        return "TIMED_WAITING" if "timeout" in line else "WAITING"
    return "RUNNABLE"


def state_of_frame(frame):
    code = frame.f_code
    return state_of(code.co_name, code_line(code.co_filename, frame.f_lineno))


_modules_by_file = {}


def module_of_file(filename):
    """The loaded module whose __file__ is `filename` (cached; rescanned when missing)."""
    m = _modules_by_file.get(filename)
    if m is None:
        for mod in list(sys.modules.values()):
            f = reflect.module_dict(mod).get("__file__") if issubclass(type(mod), reflect.MODULE) else None
            if f:
                _modules_by_file.setdefault(f, mod)
        m = _modules_by_file.get(filename)
    return m


def code_name(code):
    """module.Class.method for a code object: the module from its file, the rest from
    co_qualname (3.11+) or, before, from the module's functions and classes."""
    module = module_of_file(code.co_filename)
    qual = getattr(code, "co_qualname", None) or _find_qualname(module, code) or code.co_name
    name = reflect.module_dict(module).get("__name__") if module is not None else None
    return "%s.%s" % (name, qual) if name else qual


def _find_qualname(module, code):
    """Only plain functions and class dicts are looked at: getattr on any other global (a lazy
    proxy, say) could run the target's code."""
    if module is None:
        return None
    for value in list(reflect.module_dict(module).values()):
        if type(value) is _FUNCTION and value.__code__ is code:
            return value.__qualname__
        if issubclass(type(value), type):      # not isinstance: it would ask a proxy its __class__
            for attr in list(reflect.type_dict(value).values()):
                fn = attr.__func__ if issubclass(type(attr), (staticmethod, classmethod)) else attr
                if type(fn) is _FUNCTION and fn.__code__ is code:
                    return fn.__qualname__
    return None


_FUNCTION = type(_find_qualname)


# ---- which thread is which -----------------------------------------------------------------
# Thread names, native ids and the main thread come from real data, never from threading's
# functions: after gevent's monkey.patch_all() threading.enumerate() and current_thread() speak
# of greenlets (the main thread's record is re-keyed by the main greenlet's id), and a process
# that never imported threading has no record at all (we do not import it). Records are read as
# stored: no property or __getattr__ of theirs runs.


def main_ident(frames):
    """The ident of the main thread among `frames` (sys._current_frames()): the interpreter's
    own record (3.13+), else threading's when it names a real thread, else the oldest thread
    state (the interpreter lists thread states newest first: the main thread's comes last)."""
    get_main = getattr(_thread, "_get_main_thread_ident", None)
    if type(get_main) is type(len):  # the C function, not a patched one
        ident = get_main()
        if ident in frames:
            return ident
    threading = sys.modules.get("threading")
    main = reflect.fields(threading).get("_main_thread") if threading is not None else None
    ident = reflect.fields(main).get("_ident") if main is not None else None
    if ident in frames:
        return ident
    return list(frames)[-1] if frames else None


def thread_table(frames):
    """ident -> {name, native_id, daemon, is_main} for every thread of `frames`. Names come from
    threading's registry of real threads (`_active`, keyed by real idents); the main thread is
    "MainThread" with the process's id as native id (its tid, in the process's own pid
    namespace) when threading does not know better; a thread threading never saw has name None."""
    threading = sys.modules.get("threading")
    registry = reflect.fields(threading) if threading is not None else {}
    active = registry.get("_active")
    active = dict(active) if issubclass(type(active), dict) else {}  # a copy: threads come and go
    main = main_ident(frames)
    table = {}
    for ident in frames:
        thread = active.get(ident)
        if thread is None and ident == main:
            thread = registry.get("_main_thread")  # gevent keys it by the main greenlet's id
        fields = reflect.fields(thread) if thread is not None else {}
        name = fields.get("_name")
        info = {"name": name if type(name) is str else None, "native_id": fields.get("_native_id"),
                "daemon": fields.get("_daemonic") if thread is not None else None, "is_main": ident == main}
        if ident == main:
            info["name"] = info["name"] or "MainThread"
            info["native_id"] = _main_native_id(info["native_id"])
        table[ident] = info
    return table


def _main_native_id(recorded):
    """threading's record when it is a thread of this process, else the pid: the main thread's
    tid. (A record can be stale: a forked child keeps its parent's when threading's fork hook
    did not run on the main thread's object, as under gevent in a gunicorn worker.)"""
    if type(recorded) is int and os.path.exists("/proc/self/task/%d" % recorded):
        return recorded
    return os.getpid()
