# peeka `thread` command: runs inside the target via the agent (`run(ctx, args)`).
# Lists every Python thread with a stack, like jstack. Read-only: it never imports
# `threading` (only uses it if the target already has), reads locals only of frames
# blocked inside threading/queue, and reads source lines with linecache without
# module globals, so no loader is called. The objects found there are read as stored
# (reflect.fields) and described by their type, never repr()'d: a subclass of
# threading's classes may override a property, a `name` or a __repr__ with code.
import os
import re
import sys
import time

REQUIRES = ("errors", "reflect")

DEFAULT_DEPTH = 50
MAX_DEPTH = 200


def _int_arg(args, key, default):
    value = args.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.CommandError("%s must be an integer, got %r" % (key, value), code="BAD_ARGS")
    return value


def _stack(lib, frame, depth):
    """Innermost `depth` frames, returned outermost first (traceback order)."""
    frames = []
    while frame is not None and len(frames) < depth:
        code = frame.f_code
        lineno = frame.f_lineno
        frames.append({"file": code.co_filename, "line": lineno, "function": code.co_name,
                       "code": lib.code_line(code.co_filename, lineno)})
        frame = frame.f_back
    frames.reverse()
    return frames


def _blocked_on(frame):
    """What a thread waits for when it waits inside threading or queue (Event.wait,
    Condition.wait, `with lock`, Thread.join, Queue.get, Semaphore.acquire): the call the
    user made, its object, and an RLock's owner. Only the innermost frames are read, and
    only when they belong to those modules (a thread blocked there is not changing them)."""
    chain = []
    f = frame
    while f is not None and len(chain) < 6 and os.path.basename(f.f_code.co_filename) in ("threading.py", "queue.py"):
        chain.append(f)
        f = f.f_back
    if not chain:
        return None
    outer = chain[-1]
    owner = outer.f_locals.get("self")
    name = outer.f_code.co_name
    info = {"kind": "%s.%s" % (reflect.type_simple_name(type(owner)), name) if owner is not None else name,
            "object": object.__repr__(owner)[:120]}   # <module.Class object at 0x..>: runs no code
    for f in chain:
        holder = _rlock_owner(_field(f.f_locals.get("self"), "_lock"))
        if holder:
            info["lock_owner"] = holder
    if name == "join" and owner is not None:
        joined = _field(owner, "_name")     # Thread.name is a property a subclass may override
        info["joining"] = joined if type(joined) is str else None
    return info


def _field(obj, name):
    """obj's instance attribute as stored (None if obj is None or has no such field)."""
    return reflect.fields(obj).get(name) if obj is not None else None


def _rlock_owner(lock):
    """The ident of the thread holding an RLock, or None: the C lock's owner is in what its own
    C repr prints (a type that cannot change: gevent may patch _thread.RLock with a class of
    its own); threading's Python _RLock keeps it in a field."""
    kind = type(lock)
    if lock is None:
        return None
    if reflect.type_simple_name(kind) == "RLock" and not reflect.can_change(kind):
        c_repr = reflect.type_dict(kind).get("__repr__")
        m = re.search(r"owner=(\d+)", c_repr(lock)) if type(c_repr) is reflect.WRAPPER else None
        return int(m.group(1)) if m else None
    threading = sys.modules.get("threading")
    if reflect.is_module(threading) and kind is reflect.module_dict(threading).get("_PyRLock"):
        owner = _field(lock, "_owner")
        return owner if type(owner) is int else None
    return None


def _describe_thread(lib, ident, frame, known, depth):
    """One thread: `known` is its row of threads.thread_table (names and ids as stored, never
    through threading's methods, which would run the target's code)."""
    stack = _stack(lib, frame, depth)
    info = {"ident": ident, "native_id": known["native_id"], "name": known["name"] or "<unknown>",
            "daemon": known["daemon"], "alive": True, "is_main": known["is_main"], "stack": stack,
            "state": lib.state_of(stack[-1]["function"], stack[-1]["code"]) if stack else "UNKNOWN"}
    try:
        blocked = _blocked_on(frame)
    except Exception:
        blocked = None
    if blocked is not None:
        info["blocked_on"] = blocked
        if info["state"] == "RUNNABLE":
            info["state"] = "WAITING"   # e.g. `with lock:` shows as a call of __enter__
    return info


def _task_cpu():
    """native thread id -> (utime+stime ticks, state letter, comm) from /proc/self/task."""
    out = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/self/task/%s/stat" % tid, "rb") as f:
                raw = f.read().decode("utf-8", "replace")
        except OSError:
            continue                # the thread ended meanwhile
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12]), fields[0], comm)
    return out


def _task_states(tids):
    out = {}
    for tid in tids:
        try:
            with open("/proc/self/task/%d/stat" % tid, "rb") as f:
                raw = f.read()
            out[tid] = raw[raw.rindex(b")") + 2:raw.rindex(b")") + 3]
        except (OSError, ValueError):
            pass
    return out


def busiest(ctx, threads, hidden_native, top, interval_ms):
    """The `top` threads by CPU over interval_ms, Python ones with their stacks, others by
    their OS name (threads started from C). Meanwhile the threads' OS states are sampled
    every 5 ms: with a GIL only one thread runs Python at a time, so a Python thread found
    running in most samples while the others wait is the one holding the GIL."""
    before = _task_cpu()
    tids = [t for t in before if t not in hidden_native]
    running = dict((t, 0) for t in tids)
    looks = 0
    ends = time.monotonic() + interval_ms / 1000.0
    while not ctx.cancelled.wait(min(0.005, max(0.0, ends - time.monotonic()))) and time.monotonic() < ends:
        looks += 1
        for tid, state in _task_states(tids).items():
            if state == b"R":
                running[tid] += 1
    after = _task_cpu()
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    by_native = dict((t["native_id"], t) for t in threads if t.get("native_id"))
    rows = []
    for tid, (ticks, state, comm) in after.items():
        if tid in hidden_native:
            continue
        used = ticks - before.get(tid, (ticks,))[0]
        cpu_ms = used * 1000.0 / hz
        row = by_native.get(tid) or {"ident": None, "native_id": tid, "name": comm, "stack": [],
                                     "state": "UNKNOWN", "python": False}
        row = dict(row, cpu_ms=round(cpu_ms, 1), cpu_percent=round(100.0 * cpu_ms / interval_ms, 1),
                   os_state=state, running_pct=round(100.0 * running.get(tid, 0) / looks, 1) if looks else None)
        rows.append(row)
    rows.sort(key=lambda r: (-r["cpu_ms"], r["native_id"]))
    return rows[:top], _gil_holder(rows)


def _gil_holder(rows):
    """The Python thread that ran in most state samples, if that is most of them (GIL builds)."""
    gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
    python_rows = [r for r in rows if r.get("ident") is not None and r.get("running_pct") is not None]
    if not gil_enabled or not python_rows:
        return None
    best = max(python_rows, key=lambda r: r["running_pct"])
    if best["running_pct"] < 50:
        return None
    return {"ident": best["ident"], "native_id": best["native_id"], "name": best["name"],
            "running_pct": best["running_pct"]}


def _mark_event_loops(ctx, threads, hidden):
    """A thread running an asyncio event loop gets `event_loop` (its type, class and pending
    tasks); `peeka tasks` shows them. Only when the target imported asyncio itself."""
    if "asyncio.events" not in sys.modules:
        return
    aio = ctx.agent.lib("aio")
    loops = aio.loop_summary(aio.Asyncio(), aio.thread_stacks(hidden))
    for t in threads:
        if t["ident"] in loops:
            t["event_loop"] = loops[t["ident"]]


def run(ctx, args):
    lib = ctx.agent.lib("threads")
    depth = _int_arg(args, "depth", DEFAULT_DEPTH)
    depth = DEFAULT_DEPTH if depth is None else min(max(depth, 1), MAX_DEPTH)
    tid = _int_arg(args, "tid", None)
    hidden = set(ctx.agent.thread_idents)
    frames = sys._current_frames()
    table = lib.thread_table(frames)
    idents = [i for i in frames if i not in hidden]
    if tid is not None:
        if tid not in idents:
            raise errors.CommandError("no thread with ident %d" % tid, code="THREAD_NOT_FOUND")
        idents = [tid]
    threads = [_describe_thread(lib, i, frames[i], table[i], depth) for i in idents]
    del frames  # frames pin the target's objects; drop them before replying
    _mark_event_loops(ctx, threads, hidden)
    threads.sort(key=lambda t: (not t["is_main"], t["name"], t["ident"]))
    top = _int_arg(args, "top", None)
    if top is not None:
        interval = _int_arg(args, "interval", 200)
        if top < 1 or not 10 <= interval <= 60000:
            raise errors.CommandError("-n must be at least 1 and --interval 10..60000 ms", code="BAD_ARGS")
        hidden_native = set(getattr(ctx.agent, "thread_native_ids", ()) or ())
        threads, gil = busiest(ctx, threads, hidden_native, top, interval)
        return {"threads": threads, "count": len(threads), "interval_ms": interval, "top": top,
                "gil_holder": gil}
    return {"threads": threads, "count": len(threads)}
