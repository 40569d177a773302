# peeka agent library "aio": the asyncio event loops and tasks of the target, read as data.
# Nothing here imports asyncio (a target that never imported it gets nothing imported), runs
# the target's code (no __repr__, no callbacks, no property or method of a user class: fields
# are read through the descriptors asyncio's own classes define) or iterates a set another
# thread may change (registries are copied by one C call, which the GIL keeps whole).
import gc
import sys
import time

REQUIRES = ("reflect",)

# Types whose C fields are plain reads: the interpreter's and asyncio's own.
TRUSTED_C = ("builtins", "_asyncio")
STACK_LIMIT = 300       # frames walked per thread when looking for loops and running tasks
CHAIN_LIMIT = 200       # awaitables followed per task
TIMER_CHUNK = 1000      # timer handles read between two calls of Asyncio.pause


def field(obj, name, default=None, trusted=TRUSTED_C):
    """obj.name read as data: a __slots__ member, a C field of a type from a `trusted` module,
    a value in the instance's __dict__ or a plain class value. A property or any other
    descriptor that would run code gives `default` instead. (Some C types keep an instance
    dict without a __dict__ descriptor: the generic lookup reads it when no class defines
    `name`.) How a type's attribute is read is worked out once per type (tasks are many,
    their types few)."""
    t = type(obj)
    key = (id(t), name, trusted)
    how = _HOW.get(key)
    if how is None or how[0] is not t or (how[1] is _GENERIC and how[3] and reflect.lookup(t, name) is not how[2]):
        how = _HOW[key] = _how_to_read(t, name, trusted)  # t is kept in `how`: its id is not reused
    kind, attr = how[1], how[2]
    try:
        if kind is _DESCRIPTOR:
            return attr.__get__(obj, t)
        if kind is _GENERIC:                    # no descriptor to run: the instance's own value,
            return object.__getattribute__(obj, name)   # else the class's (no __getattr__ either)
    except AttributeError:
        return default
    if kind is _INSTANCE:                       # a method on the class: only an instance value counts
        idict = reflect.instance_dict(obj, t)
        value = dict.get(idict, name, reflect.MISSING) if idict is not None else reflect.MISSING
        return default if value is reflect.MISSING else value
    return default


_HOW = {}
_DESCRIPTOR, _GENERIC, _INSTANCE, _NEVER = "descriptor", "generic", "instance", "never"


def _how_to_read(t, name, trusted):
    """(t, kind, what lookup() found, whether t's dictionaries can change). The generic read
    runs what the class holds when it is read: a class that can change (one defined in Python)
    is looked at again before each such read, so a property put there since is never run."""
    attr = reflect.lookup(t, name)
    at = type(attr)
    mutable = reflect.can_change(t)
    if at is reflect.MEMBER or (at is reflect.GETSET and reflect.type_module(reflect.owner(t, name)) in trusted):
        return t, _DESCRIPTOR, attr, mutable
    if attr is not reflect.MISSING and reflect.lookup(at, "__set__") is not reflect.MISSING:
        return t, _NEVER, attr, mutable         # a data descriptor (property...): it would run code
    if attr is reflect.MISSING or reflect.lookup(at, "__get__") is reflect.MISSING:
        return t, _GENERIC, attr, mutable
    return t, _INSTANCE, attr, mutable


def type_name(obj):
    t = type(obj)
    return "%s.%s" % (reflect.type_module(t), reflect.type_name(t))


def hex_id(obj):
    return "0x%x" % id(obj)


def _sample_types():
    async def coro():
        pass

    async def agen():
        yield

    def gen():
        yield
    c, a = coro(), agen()
    asend, athrow, wrapper = a.asend(None), a.athrow(ValueError), c.__await__()
    kinds = (type(c), type(a), type(gen()))
    wrappers = (type(asend), type(athrow), type(wrapper))
    asend.close()
    athrow.close()
    c.close()
    return kinds, wrappers


(CORO, AGEN, GEN), _WRAPPERS = _sample_types()


class Asyncio(object):
    """What one look at the target's asyncio found: its modules, loops, their timers."""

    def __init__(self):
        mods = sys.modules
        self.events = mods.get("asyncio.events")
        self.tasks_mod = mods.get("asyncio.tasks")
        self.futures = mods.get("asyncio.futures")
        self.c = mods.get("_asyncio")                 # only if asyncio imported it
        self.notes = []
        self.task_types = tuple(t for t in (self._global(self.tasks_mod, "Task"),
                                            self._global(self.tasks_mod, "_PyTask"),
                                            self._global(self.c, "Task")) if issubclass(type(t), type))
        self.future_types = tuple(t for t in (self._global(self.futures, "Future"),
                                              self._global(self.futures, "_PyFuture"),
                                              self._global(self.c, "Future")) if issubclass(type(t), type))
        self.loop_base = self._global(self.events, "AbstractEventLoop")
        base_events = mods.get("asyncio.base_events")
        self.base_time = reflect.type_dict(self._global(base_events, "BaseEventLoop", object)).get("time")
        self.set_result = self._global(self.futures, "_set_result_unless_cancelled")
        self.gathering = self._global(self.tasks_mod, "_GatheringFuture")
        self.task_group = self._global(mods.get("asyncio.taskgroups"), "TaskGroup")
        self._timers = {}                             # loop id -> {future id: when}
        self.pause = lambda: None                     # called between chunks of long walks

    @staticmethod
    def _global(module, name, default=None):
        return reflect.fields(module).get(name, default) if module is not None else default

    @property
    def present(self):
        return self.events is not None and self.tasks_mod is not None

    # -- loops --------------------------------------------------------------------------------
    def is_loop(self, obj):
        return self.loop_base is not None and issubclass(type(obj), self.loop_base)

    def is_task(self, obj):
        return issubclass(type(obj), self.task_types) if self.task_types else False

    def loops_in_stacks(self, stacks):
        """Loops whose run_forever/_run_once/run_until_complete (or an asyncio.Runner) is on a
        thread's stack: ident -> loop."""
        found = {}
        for ident, frames in stacks.items():
            for frame in frames:
                code = frame.f_code
                name, path = code.co_name, code.co_filename.replace("\\", "/")
                if "/asyncio/" not in path:
                    continue
                if name in ("run_forever", "_run_once", "run_until_complete", "run"):
                    this = frame.f_locals.get("self")
                    loop = this if self.is_loop(this) else field(this, "_loop")
                    if self.is_loop(loop):
                        found.setdefault(ident, loop)
        return found

    def loop_kind(self, loop):
        return "uvloop" if str(reflect.type_module(type(loop))).startswith("uvloop") else "asyncio"

    def loop_thread(self, loop):
        """The ident of the thread running `loop` (BaseEventLoop keeps it while it runs)."""
        ident = field(loop, "_thread_id")
        return ident if type(ident) is int else None

    def now(self, loop):
        """loop.time() when it is asyncio's own (time.monotonic), else None."""
        if self.base_time is not None and reflect.lookup(type(loop), "time") is self.base_time:
            return time.monotonic()
        return None

    def sleep_timers(self, loop):
        """future id -> when, for the asyncio.sleep() timers in the loop's heap (each wakes
        its future through futures._set_result_unless_cancelled). The heap is copied at once
        and read in chunks, calling self.pause() between them."""
        key = id(loop)
        if key not in self._timers:
            heap = field(loop, "_scheduled")
            handles = list(heap) if type(heap) is list else None
            timers = {} if handles is not None else None
            for start in range(0, len(handles or ()), TIMER_CHUNK):
                for handle in handles[start:start + TIMER_CHUNK]:
                    args = field(handle, "_args")
                    if field(handle, "_callback") is self.set_result and type(args) is tuple and args \
                            and not field(handle, "_cancelled"):
                        timers[id(args[0])] = field(handle, "_when")
                self.pause()
            self._timers[key] = timers
        return self._timers[key]

    # -- tasks --------------------------------------------------------------------------------
    def registered_tasks(self, loops):
        """Every task the registries hold, deduplicated, and where they came from. Before 3.14
        a WeakSet (+ a set of eager tasks on 3.12+); from 3.14 the C tasks sit in per-thread
        lists that only _asyncio.all_tasks(loop) walks, so they are asked per loop found."""
        tasks, seen, sources = [], set(), []

        def add(items, source):
            sources.append(source)
            for t in items:
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    tasks.append(t)
        for name in ("_all_tasks", "_scheduled_tasks"):
            weak = self._global(self.tasks_mod, name)
            data = field(weak, "data")
            if type(data) is set:
                add([ref() for ref in tuple(data)], "asyncio.tasks.%s" % name)
        eager = self._global(self.tasks_mod, "_eager_tasks")
        if type(eager) is set:
            add(tuple(eager), "asyncio.tasks._eager_tasks")
        if sys.version_info >= (3, 14) and self.c is not None:
            all_tasks = self._global(self.c, "all_tasks")
            for loop in loops:
                add(tuple(all_tasks(loop)), "_asyncio.all_tasks(loop)")
            if not loops:
                self.notes.append("3.14+: asyncio keeps tasks per thread and lists them per event loop; "
                                  "no running loop was found on any thread's stack")
        return tasks, sorted(set(sources))

    def task_name(self, task):
        c_task = self._global(self.c, "Task")
        if c_task is not None and issubclass(type(task), c_task):
            return c_task.get_name(task)              # the C method itself, never an override
        name = field(task, "_name")
        return name if type(name) is str else None

    def task_state(self, task, coro):
        state = field(task, "_state")
        if state != "PENDING":
            return "done", {"cancelled": state == "CANCELLED"}
        if type(coro) is CORO and coro.cr_running:
            return "running", {}
        if field(task, "_must_cancel") or self._cancel_requests(task):
            return "cancelling", {}
        return "pending", {}

    def _cancel_requests(self, task):
        c_task = self._global(self.c, "Task")
        if c_task is not None and issubclass(type(task), c_task):
            cancelling = reflect.type_dict(c_task).get("cancelling")
            return cancelling(task) if cancelling is not None else 0
        n = field(task, "_num_cancels_requested", 0)
        return n if type(n) is int else 0

    # -- await chains -------------------------------------------------------------------------
    def chain(self, coro):
        """The awaitables a task's coroutine is suspended in, outermost first: (kind, qualname,
        frame) for coroutines, async generators and generators; then the first object that is
        none of those (a future, or an unknown awaitable) or None."""
        links, obj, steps = [], coro, 0
        while obj is not None and steps < CHAIN_LIMIT:
            steps += 1
            t = type(obj)
            if t is CORO:
                links.append(("coroutine", obj.__qualname__, obj.cr_frame))
                obj = obj.cr_await
            elif t is AGEN:
                links.append(("async_generator", obj.__qualname__, obj.ag_frame))
                obj = obj.ag_await
            elif t is GEN:
                links.append(("generator", obj.__qualname__, obj.gi_frame))
                obj = obj.gi_yieldfrom
            elif t in _WRAPPERS or self._is_future_iter(t):
                obj = self._wrapped(obj)              # asend/athrow/__await__ wrappers, FutureIter
            else:
                return links, obj
        return links, None

    def _is_future_iter(self, t):
        return reflect.type_module(t) == "_asyncio" and reflect.type_name(t) == "FutureIter"

    def _wrapped(self, obj):
        """What a C wrapper awaits, from its GC references (its tp_traverse: no code runs)."""
        for ref in gc.get_referents(obj):
            rt = type(ref)
            if rt is CORO or rt is AGEN or rt is GEN or issubclass(rt, self.future_types or ()):
                return ref
        return None

    def awaiting(self, task, loop, last, fut):
        """What the innermost await of a pending task waits for."""
        if fut is None and type(last) is tuple and last[1].endswith("__sleep0"):
            return {"kind": "sleep", "remaining_s": 0.0}
        if fut is None:                 # a pending task waiting for nothing: its next step is due
            return {"kind": "ready"}
        if self.is_task(fut):
            return {"kind": "task", "task": hex_id(fut), "name": self.task_name(fut)}
        if self.gathering is not None and issubclass(type(fut), self.gathering):
            return {"kind": "gather", "tasks": [hex_id(t) for t in self.gather_children(fut)]}
        timers = self.sleep_timers(loop) if loop is not None else None
        if timers is not None and id(fut) in timers:
            now = self.now(loop)
            when = timers[id(fut)]
            return {"kind": "sleep", "remaining_s": round(when - now, 4) if now is not None else None}
        info = {"kind": "future", "type": type_name(fut), "state": str(field(fut, "_state"))}
        if timers is None and loop is not None:
            info["note"] = "timers of a %s loop are not readable" % self.loop_kind(loop)
        return info

    def gather_children(self, outer, depth=0):
        """The tasks a gather() waits for (nested gathers included)."""
        out = []
        children = field(outer, "_children")
        for child in (list(children) if type(children) is list else ()):
            if self.is_task(child):
                out.append(child)
            elif depth < 10 and self.gathering is not None and issubclass(type(child), self.gathering):
                out.extend(self.gather_children(child, depth + 1))
        return out

    def group_children(self, links):
        """The tasks of a TaskGroup whose __aexit__ is in the chain."""
        for kind, qualname, frame in links:
            if frame is not None and self.task_group is not None and "TaskGroup." in qualname:
                group = frame.f_locals.get("self")
                if issubclass(type(group), self.task_group):
                    members = field(group, "_tasks")
                    return [t for t in (tuple(members) if type(members) is set else ()) if self.is_task(t)]
        return []

    def awaited_by(self, task):
        """3.14+: the futures asyncio itself records as awaiting this one (gather, TaskGroup)."""
        if sys.version_info < (3, 14):
            return []
        parents = field(task, "_asyncio_awaited_by")
        if type(parents) in (set, frozenset):
            return [p for p in tuple(parents) if self.is_task(p)]
        return []


def thread_stacks(hidden=()):
    """ident -> the thread's frames, innermost first (at most STACK_LIMIT)."""
    stacks = {}
    for ident, frame in sys._current_frames().items():
        if ident in hidden:
            continue
        frames = []
        while frame is not None and len(frames) < STACK_LIMIT:
            frames.append(frame)
            frame = frame.f_back
        stacks[ident] = frames
    return stacks


def loop_summary(aio, stacks):
    """For `thread`: ident -> {"type", "class", "tasks"} of each thread running a loop."""
    if not aio.present:
        return {}
    by_thread = aio.loops_in_stacks(stacks)
    tasks, _ = aio.registered_tasks(list(by_thread.values()))
    counts = {}
    for task in tasks:
        if field(task, "_state") == "PENDING":
            loop = field(task, "_loop")
            counts[id(loop)] = counts.get(id(loop), 0) + 1
    return dict((ident, {"type": aio.loop_kind(loop), "class": type_name(loop),
                         "tasks": counts.get(id(loop), 0)}) for ident, loop in by_thread.items())
