# peeka agent library "greenlets": the greenlets of a gevent process with their stacks and
# states, read as data (greenlet's own C fields; gevent's start flag through gevent's own
# __bool__). greenlet keeps no registry of its objects, so they are found among the objects
# the garbage collector tracks, filtered in chunks between which the GIL is released.
import gc
import sys

REQUIRES = ("reflect", "aio")

CHUNK = 20000           # objects looked at between two releases of the GIL


def in_use():
    return "gevent" in sys.modules and _greenlet_type() is not None


def _greenlet_type():
    for name in ("greenlet", "greenlet._greenlet"):
        module = sys.modules.get(name)
        g = reflect.fields(module).get("greenlet") if module is not None else None
        if issubclass(type(g), type):
            return g
    return None


def _class(module, name):
    m = sys.modules.get(module)
    value = reflect.fields(m).get(name) if m is not None else None
    return value if issubclass(type(value), type) else None


class Look(object):
    """One pass over the greenlets of the target; `frame_info` formats a frame."""

    def __init__(self, ctx, depth, clock, frame_info):
        self.ctx, self.depth, self.clock, self.frame_info = ctx, depth, clock, frame_info
        self.base = _greenlet_type()
        slots = reflect.type_dict(self.base)
        self.dead, self.frame, self.parent = slots["dead"].__get__, slots["gr_frame"].__get__, slots["parent"].__get__
        self.active = slots["__bool__"]          # started and not dead, greenlet's own C slot
        self.gevent = _class("gevent.greenlet", "Greenlet")
        self.hub_type = _class("gevent.hub", "Hub")
        self.stacks = aio.thread_stacks(set(ctx.agent.thread_idents))

    def run(self):
        found = []
        objects = gc.get_objects()
        for start in range(0, len(objects), CHUNK):
            found.extend(o for o in objects[start:start + CHUNK] if issubclass(type(o), self.base))
            self.clock.release()
        del objects
        self.hubs = [g for g in found if self.hub_type is not None and issubclass(type(g), self.hub_type)]
        batch = []
        for g in found:
            batch.append(self.describe(g))
            if len(batch) == 250:
                self.ctx.emit({"type": "tasks", "tasks": batch})
                batch = []
                self.clock.release()
        if batch:
            self.ctx.emit({"type": "tasks", "tasks": batch})
        self.stacks = None
        return {"count": len(found),
                "notes": ["a suspended greenlet shows as blocked even when a loop callback resumes it next"]}

    def describe(self, g):
        info = {"kind": "greenlet", "id": aio.hex_id(g), "type": aio.type_name(g),
                "name": self._name(g), "state": self._state(g), "coro": self._run_name(g)}
        hub = self._hub_of(g)
        ident = aio.field(hub, "thread_ident") if hub is not None else None
        info["thread"] = ident if type(ident) is int else None
        if self.hub_type is not None and issubclass(type(g), self.hub_type):
            info["hub"] = True
        if info["state"] == "running":
            frames = self.stacks.get(info["thread"], [])[:self.depth]
            info["stack"] = [self.frame_info(f) for f in reversed(frames)]
            if not frames:
                info["note"] = "running on a thread peeka could not tell"
        else:
            info["stack"] = self._suspended_stack(g)
        return info

    def _suspended_stack(self, g):
        frames, frame = [], self.frame(g)
        while frame is not None and len(frames) < self.depth:
            frames.append(self.frame_info(frame))
            frame = frame.f_back
        frames.reverse()
        return frames

    def _state(self, g):
        if self.dead(g):
            return "done"
        if not self.active(g):
            scheduled = self.gevent is not None and issubclass(type(g), self.gevent) \
                and reflect.type_dict(self.gevent)["__bool__"](g)
            return "ready" if scheduled else "not started"
        return "running" if self.frame(g) is None else "blocked"

    def _name(self, g):
        if self.parent(g) is None:
            return "main"
        if self.hub_type is not None and issubclass(type(g), self.hub_type):
            return "hub"
        name = aio.field(g, "name", trusted=())      # gevent's name property is never run
        return name if type(name) is str else None

    def _run_name(self, g):
        fn = aio.field(g, "_run", trusted=()) or aio.field(g, "run", trusted=("greenlet", "greenlet._greenlet"))
        code = aio.field(fn, "__code__")
        qualname = aio.field(fn, "__qualname__")
        if type(qualname) is not str:
            return aio.type_name(g)
        module = aio.field(fn, "__module__")
        return "%s.%s" % (module, qualname) if type(module) is str and code is not None else qualname

    def _hub_of(self, g):
        """The gevent Hub among g and its parents, or the hub g is the main greenlet of (a hub
        runs on one thread and says which)."""
        for hub in self.hubs:
            if self.parent(hub) is g:
                return hub
        node, steps = g, 0
        while node is not None and steps < 50:
            if self.hub_type is not None and issubclass(type(node), self.hub_type):
                return node
            node, steps = self.parent(node), steps + 1
        return None
