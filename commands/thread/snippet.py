# peeka `thread` command: runs inside the target via the agent (`run(ctx, args)`).
# Lists every Python thread with a stack, like jstack. Read-only: it never imports
# `threading` (only uses it if the target already has), never touches f_locals and
# reads source lines with linecache without module globals, so no loader is called.
import linecache
import re
import sys

DEFAULT_DEPTH = 50
MAX_DEPTH = 200
# Names of the innermost Python function, or the call its current line makes into C.
_TIMED_NAME = re.compile(r"sleep")
_TIMED_CALL = re.compile(r"\bsleep\(")
_WAITING_NAME = re.compile(r"^_*(wait|acquire|accept|recv|read|select|poll)|^(get|join)$")
_WAITING_CALL = re.compile(r"\.(wait|acquire|accept|recv\w*|read\w*|poll|get|join)\(|\bselect\(|\binput\(")


def _int_arg(args, key, default):
    value = args.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError("%s must be an integer, got %r" % (key, value), code="BAD_ARGS")  # noqa: F821
    return value


def _code_line(filename, lineno):
    if not filename or not lineno:
        return None
    try:
        return linecache.getline(filename, lineno).strip() or None
    except Exception:
        return None


def _stack(frame, depth):
    """Innermost `depth` frames, returned outermost first (traceback order)."""
    frames = []
    while frame is not None and len(frames) < depth:
        code = frame.f_code
        lineno = frame.f_lineno
        frames.append({"file": code.co_filename, "line": lineno, "function": code.co_name,
                       "code": _code_line(code.co_filename, lineno)})
        frame = frame.f_back
    frames.reverse()
    return frames


def _state(stack):
    """Heuristic from the innermost frame: what it is, or what C call its line makes."""
    if not stack:
        return "UNKNOWN"
    top = stack[-1]
    name, line = top["function"], top["code"] or ""
    if _TIMED_NAME.search(name) or _TIMED_CALL.search(line):
        return "TIMED_WAITING"
    if _WAITING_NAME.search(name) or _WAITING_CALL.search(line):
        return "TIMED_WAITING" if "timeout" in line else "WAITING"
    return "RUNNABLE"


def _thread_objects():
    """ident -> threading.Thread, plus the main ident, if the target uses threading."""
    threading = sys.modules.get("threading")
    if threading is None:
        return {}, None
    try:
        objects = dict((t.ident, t) for t in threading.enumerate())
        return objects, threading.main_thread().ident
    except Exception:
        return {}, None


def _describe_thread(ident, frame, thread, main_ident, depth):
    stack = _stack(frame, depth)
    info = {"ident": ident, "native_id": None, "name": "<unknown>", "daemon": None,
            "alive": True, "is_main": ident == main_ident, "state": _state(stack), "stack": stack}
    if thread is not None:
        info["name"] = str(getattr(thread, "name", "<unknown>"))
        info["native_id"] = getattr(thread, "native_id", None)
        info["daemon"] = bool(getattr(thread, "daemon", False))
        try:
            info["alive"] = bool(thread.is_alive())
        except Exception:
            pass
    return info


def run(ctx, args):
    depth = _int_arg(args, "depth", DEFAULT_DEPTH)
    depth = DEFAULT_DEPTH if depth is None else min(max(depth, 1), MAX_DEPTH)
    tid = _int_arg(args, "tid", None)
    hidden = set(ctx.agent.thread_idents)
    frames = sys._current_frames()
    objects, main_ident = _thread_objects()
    idents = [i for i in frames if i not in hidden]
    if main_ident is None and len(idents) == 1:
        main_ident = idents[0]  # no threading module: a lone thread must be the main one
    if tid is not None:
        if tid not in idents:
            raise CommandError("no thread with ident %d" % tid, code="THREAD_NOT_FOUND")  # noqa: F821
        idents = [tid]
    threads = [_describe_thread(i, frames[i], objects.get(i), main_ident, depth) for i in idents]
    del frames  # frames pin the target's objects; drop them before replying
    threads.sort(key=lambda t: (not t["is_main"], t["name"], t["ident"]))
    return {"threads": threads, "count": len(threads)}
