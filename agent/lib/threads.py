# peeka agent library "threads": what a thread is doing and where, judged from its
# frames without running any of the target's code (shared by thread, top and trace).
import linecache
import re
import sys

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
            f = vars(mod).get("__file__") if isinstance(mod, type(sys)) else None  # no __getattr__
            if f:
                _modules_by_file.setdefault(f, mod)
        m = _modules_by_file.get(filename)
    return m


def code_name(code):
    """module.Class.method for a code object: the module from its file, the rest from
    co_qualname (3.11+) or, before, from the module's functions and classes."""
    module = module_of_file(code.co_filename)
    qual = getattr(code, "co_qualname", None) or _find_qualname(module, code) or code.co_name
    name = getattr(module, "__name__", None)
    return "%s.%s" % (name, qual) if name else qual


def _find_qualname(module, code):
    """Only plain functions and class dicts are looked at: getattr on any other global (a lazy
    proxy, say) could run the target's code."""
    if module is None:
        return None
    for value in list(vars(module).values()):
        if type(value) is _FUNCTION and value.__code__ is code:
            return value.__qualname__
        if isinstance(value, type):
            for attr in list(type.__dict__["__dict__"].__get__(value).values()):
                fn = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
                if type(fn) is _FUNCTION and fn.__code__ is code:
                    return fn.__qualname__
    return None


_FUNCTION = type(_find_qualname)
