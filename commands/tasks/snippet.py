# peeka `tasks` command: runs inside the target via the agent (`run(ctx, args)`).
# Every asyncio task of every event loop, on any thread, with its await chain; and, in a
# gevent process, every greenlet with its stack. Read-only: nothing is imported, no code of
# the target runs (see agent/lib/aio.py). Tasks are described in chunks sent as they are
# ready, and the GIL is released between chunks, so a loop with 10 000 tasks keeps running.
import sys
import time

REQUIRES = ("errors", "real", "reflect", "aio", "greenlets", "threads")

DEFAULT_DEPTH = 20
MAX_DEPTH = 200
CHUNK = 100             # tasks described between two releases of the GIL


def _depth(args):
    value = args.get("depth", DEFAULT_DEPTH)
    if value is None:
        return DEFAULT_DEPTH
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise errors.CommandError("--depth must be a positive integer, got %r" % (value,), code="BAD_ARGS")
    return min(value, MAX_DEPTH)


class _Clock(object):
    """Wall time of the call, and the CPU (= GIL, on a GIL build) time this thread used, in
    total and in its longest stretch between two releases."""

    def __init__(self, sleep):
        self.sleep = sleep                      # the real one: gevent's would start a hub here
        self.wall0, self.cpu0 = time.monotonic(), time.thread_time()
        self.mark = self.cpu0
        self.longest = 0.0

    def release(self):
        now = time.thread_time()
        self.longest = max(self.longest, now - self.mark)
        self.sleep(0)                           # lets the loop's thread take the GIL
        self.mark = time.thread_time()

    def summary(self):
        self.longest = max(self.longest, time.thread_time() - self.mark)
        return {"gil_ms": round((time.thread_time() - self.cpu0) * 1000, 2),
                "gil_max_ms": round(self.longest * 1000, 2),
                "total_ms": round((time.monotonic() - self.wall0) * 1000, 2)}


def _frame_info(frame, function=None, kind=None):
    code = frame.f_code
    info = {"file": code.co_filename, "line": frame.f_lineno, "function": function or code.co_name,
            "code": threads.code_line(code.co_filename, frame.f_lineno)}
    if kind:
        info["kind"] = kind
    return info


def _qualified(code, qualname):
    module = threads.module_of_file(code.co_filename) if code is not None else None
    name = reflect.module_dict(module).get("__name__") if module is not None else None
    return "%s.%s" % (name, qualname) if type(name) is str else qualname


class _Look(object):
    """One pass over the asyncio of the target."""

    def __init__(self, ctx, depth, clock):
        self.ctx, self.depth, self.clock = ctx, depth, clock
        self.asyncio = aio.Asyncio()
        self.asyncio.pause = clock.release
        self.hidden = set(ctx.agent.thread_idents)
        self.stacks = aio.thread_stacks(self.hidden)
        # threads' own names (real data: MainThread also without threading or under gevent)
        self.names = dict((ident, info["name"]) for ident, info in threads.thread_table(self.stacks).items())
        self.loops = {}

    def run(self):
        by_thread = self.asyncio.loops_in_stacks(self.stacks)
        for ident, loop in by_thread.items():
            self._loop(loop, ident)
        t0 = time.monotonic()
        tasks, sources = self.asyncio.registered_tasks([self.loops[k]["obj"] for k in self.loops])
        snapshot_ms = round((time.monotonic() - t0) * 1000, 2)
        count = 0
        for start in range(0, len(tasks), CHUNK):
            if self.ctx.cancelled.is_set():
                break
            batch = [self.describe(task) for task in tasks[start:start + CHUNK]]
            count += len(batch)
            self.ctx.emit({"type": "tasks", "tasks": batch})
            self.clock.release()
        del tasks
        loops = []
        for entry in self.loops.values():
            entry.pop("obj")
            loops.append(entry)
        self.stacks = None
        return {"count": count, "loops": loops, "registries": sources, "snapshot_ms": snapshot_ms,
                "notes": self.asyncio.notes}

    def _loop(self, loop, ident=None):
        entry = self.loops.get(id(loop))
        if entry is None:
            ident = ident if ident is not None else self.asyncio.loop_thread(loop)
            entry = self.loops[id(loop)] = {
                "id": aio.hex_id(loop), "type": self.asyncio.loop_kind(loop), "class": aio.type_name(loop),
                "thread": ident, "thread_name": self.names.get(ident), "running": ident is not None,
                "tasks": 0, "obj": loop}
        return entry

    def describe(self, task):
        a = self.asyncio
        coro = aio.field(task, "_coro")
        loop = aio.field(task, "_loop")
        state, extra = a.task_state(task, coro)
        code = getattr(coro, "cr_code", None) if type(coro) is aio.CORO else None
        qualname = coro.__qualname__ if type(coro) is aio.CORO else aio.type_name(coro)
        info = {"kind": "asyncio", "id": aio.hex_id(task), "name": a.task_name(task),
                "coro": _qualified(code, qualname), "state": state, "loop": aio.hex_id(loop)}
        info.update(extra)
        if loop is not None:
            self._loop(loop)["tasks"] += state != "done"
        if state == "done":
            info["stack"] = []
            return info
        links, _ = a.chain(coro)
        group = a.group_children(links)
        awaits = list(group)
        if state == "running":
            info["stack"] = self._running_stack(coro)
        else:
            awaits.extend(self._suspended(info, task, coro, loop, links, group))
        info["awaits"] = sorted(set(aio.hex_id(t) for t in awaits))
        parents = a.awaited_by(task)
        if parents:
            info["awaited_by"] = sorted(aio.hex_id(p) for p in parents)
        return info

    def _suspended(self, info, task, coro, loop, links, group):
        """A suspended task's chain (innermost `depth` frames) and what it awaits, into `info`;
        returns the tasks it awaits through an awaited task or a gather."""
        a = self.asyncio
        frames = [_frame_info(f, q, k) for k, q, f in links if f is not None and q != "Future.__await__"]
        info["stack"] = frames[-self.depth:]
        if len(frames) > self.depth:
            info["frames_left_out"] = len(frames) - self.depth
        if type(coro) is not aio.CORO:
            info["note"] = "a coroutine of type %s: its frames cannot be read" % aio.type_name(coro)
        waiter = aio.field(task, "_fut_waiter")
        awaiting = a.awaiting(task, loop, links[-1] if links else None, waiter)
        if group and awaiting["kind"] == "future":
            awaiting = {"kind": "taskgroup", "tasks": [aio.hex_id(t) for t in group]}
        info["awaiting"] = awaiting
        if awaiting["kind"] == "task":
            return [waiter]
        if awaiting["kind"] == "gather":
            return a.gather_children(waiter)
        return []

    def _running_stack(self, coro):
        """The frames of the thread that runs this task now, from its coroutine inwards, read
        in the same hold of the GIL as the task's state."""
        target = coro.cr_frame
        for ident, frames in aio.thread_stacks(self.hidden).items():
            for pos, frame in enumerate(frames):
                if frame is target:
                    return [_frame_info(f) for f in reversed(frames[:pos + 1][:self.depth])]
        return []


def run(ctx, args):
    depth = _depth(args)
    clock = _Clock(real.sleep)
    result = {"asyncio": "asyncio.events" in sys.modules, "gevent": greenlets.in_use()}
    if result["asyncio"]:
        result.update(_Look(ctx, depth, clock).run())
    else:
        result.update({"count": 0, "loops": [], "notes": []})
    if result["gevent"]:
        found = greenlets.Look(ctx, depth, clock, _frame_info).run()
        result["greenlets"] = found["count"]
        result["count"] += found["count"]
        result["notes"] += found["notes"]
    if not result["asyncio"] and not result["gevent"]:
        result["message"] = "no asyncio in this process (nothing imported it), and no gevent"
    elif result["count"] == 0 and not result["loops"]:
        result["message"] = "asyncio is imported, but no event loop runs and no task exists"
    result["dropped"] = ctx.dropped
    result.update(clock.summary())
    return result
