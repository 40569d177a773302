# peeka agent library "heap": walking every object the garbage collector tracks
# without stopping the target for the whole walk (shared by inspect and memory), and counting
# them by type without running the target's code (memory --growth, --by-module); every walk
# leaves peeka's own objects out (Ours).
import gc
import sys
import time

REQUIRES = ("reflect",)

CHUNK = 20000            # objects examined between two GIL releases
CENSUS_CHUNK = 5000      # a census does more per object (~1-1.5 us): smaller chunks, ~5 ms each


def tracked_objects(cancelled, pauses=None, chunk=CHUNK, ours=None):
    """Every object the collector tracks, a chunk at a time: between chunks the GIL is released
    (the target's threads run) and the walk ends early once `cancelled` is set. The snapshot
    list pins every object, so it is dropped as soon as the walk ends. `pauses` (a Pauses), when
    given, times each stretch the walk keeps the GIL, and the GIL is released once more right
    after the snapshot list is made (one C call that holds it throughout). `ours` (an Ours),
    when given, is found just before the snapshot and its objects are left out of the chunks."""
    if ours is not None:
        ours.find(pauses)
    objects = gc.get_objects()
    try:
        if pauses is not None:
            pauses.release()
        for i in range(0, len(objects), chunk):
            yield objects[i:i + chunk] if ours is None else ours.without(objects[i:i + chunk])
            if cancelled.is_set():
                return
            if pauses is None:
                time.sleep(0)
            else:
                pauses.release()
    finally:
        del objects


class Pauses(object):
    """How long a walk kept the GIL between the releases it makes (sleep(0) between chunks):
    in all and at most. An upper bound: the interpreter may also hand the GIL to another thread
    inside a chunk of Python code (every sys.getswitchinterval()), never inside one C call such
    as gc.get_objects()."""

    def __init__(self):
        self.held = 0.0
        self.longest = 0.0
        self.releases = 0
        self._since = time.perf_counter()

    def start(self):
        """A walk begins (the time before it was not ours)."""
        self._since = time.perf_counter()

    def release(self):
        self._count(time.perf_counter() - self._since)
        time.sleep(0)
        self._since = time.perf_counter()

    def stop(self):
        """The stretch since the last release ends here (the walk is over)."""
        self._count(time.perf_counter() - self._since)
        self._since = time.perf_counter()

    def _count(self, held):
        self.held += held
        self.longest = max(self.longest, held)
        self.releases += 1

    def report(self):
        return {"gil_ms": round(self.held * 1000, 2), "gil_max_ms": round(self.longest * 1000, 2),
                "gil_releases": self.releases}


OURS_CAP = 200000        # objects of peeka's found, at most, before a walk
OURS_CHUNK = 500         # objects of peeka's found between two GIL releases (~5 ms)
OUR_PREFIX = "__peeka"   # the agent's namespaces: __peeka_boot__, __peeka_lib_*__, __peeka_cmd_*__
_FRAME = type(sys._getframe())
_FUNCTION = type(tracked_objects)
_CODE = type(tracked_objects.__code__)
_CELL = type((lambda x: lambda: x)(0).__closure__[0])
_METHOD = type(Pauses().start)
# Containers with no code of their own: one that an object of ours refers to was made by our code
# (an exception is HOLDS_TARGET, below); keyed by id: a type is never compared with == here.
_PLAIN = dict((id(t), t) for t in (dict, list, tuple, set, frozenset, _CELL, _METHOD))


def _plain_types():
    """_PLAIN, and collections.deque if the target loaded it (not imported for this)."""
    plain = dict(_PLAIN)
    collections = sys.modules.get("collections")
    deque = reflect.module_dict(collections).get("deque") if reflect.is_module(collections) else None
    if reflect.is_class(deque):
        plain[id(deque)] = deque
    return plain


def _module_of(t):
    try:
        return reflect.type_module(t)
    except AttributeError:          # a class whose __module__ was deleted
        return None


class Ours(object):
    """The objects peeka made, left out of every heap walk. Found just before the walk's
    snapshot, from the agent's roots (sys._peeka_agent, the at-fork hook, the frames of the
    agent's threads, the modules the command itself imported), through gc.get_referents, going
    on only through what peeka made:
    - a module, class or function is ours when its namespace is (named __peeka*: the agent's,
      its libraries', its snippets'; or a module in `imported`); an instance when its class is;
    - a plain container (dict, list, tuple, set, deque, cell, bound method) reached from ours is
      ours, unless it is someone else's namespace (a dict whose __name__ is not ours: the
      __builtins__ every namespace holds);
    - anything else (the target's modules, classes, functions, instances) ends the walk there:
      shared with the target, never left out. Our threads' frames are ours but their locals are
      not walked (a walk's locals hold the heap's own objects), nor is what an instance of ours
      names in its class's HOLDS_TARGET (tt's kept arguments: the target's own containers).
    The exact answer, "reachable from ours and not from the target's roots", was not chosen: the
    target's roots reach ours too (sys._peeka_agent, the probes put in its classes), and telling
    those paths apart costs a walk of the whole heap; this costs a walk of our objects, at most
    `cap` of them (then `capped`: the rest are counted as the target's)."""

    def __init__(self, imported=(), cap=OURS_CAP, keep=False):
        """imported: names of modules the command imported (ours too); keep: also hold the
        objects found (`objects`, for a search that excludes them by object)."""
        self.imported = frozenset(imported) if imported else ()    # () is shared: not in the heap
        self.cap, self.keep = cap, keep
        self.ids, self.objects = set(), []
        self.found = self.left_out = 0
        self.find_ms = None
        self.capped = False
        self._callers = []          # ids of the caller's own containers, made before the walk

    def include(self, obj):
        """A container of the caller's, made before the snapshot (e.g. the list it fills)."""
        self._callers.append(id(obj))

    def find(self, pauses=None):
        started = time.perf_counter()
        plain = _plain_types()
        self.ids = ids = set((id(self), id(self.imported), id(self.objects), id(self._callers)))
        ids.add(id(ids))
        ids.update(self._callers)
        stack, forced = self._roots(ids)
        passed = set()                  # objects not to look at again: code walked, target's kept
        is_tracked, referents = gc.is_tracked, gc.get_referents
        while stack and not self.capped:
            o = stack.pop()
            k = id(o)
            if k in ids or k in passed:
                continue
            kind = self._kind(o, plain) if k not in forced else "root"
            if kind is None:
                continue
            if type(o) is _CODE:        # not tracked, no referents: its constants may be tracked
                passed.add(k)
                codes = [c for c in o.co_consts if type(c) is _CODE]
                forced.update(map(id, codes))
                stack.extend(codes)
                stack.append(o.co_consts)
            elif is_tracked(o):         # (an untracked one holds nothing tracked: not followed)
                self._take(o, kind, forced, passed, stack)
                stack.extend(filter(is_tracked, referents(o)))
                if pauses is not None and len(ids) % OURS_CHUNK == 0:
                    pauses.release()
        self.found = len(ids)
        self.find_ms = round((time.perf_counter() - started) * 1000, 1)
        return self

    def _take(self, o, kind, forced, passed, stack):
        """o is ours: counted (below the cap), and what it tells of its referents noted."""
        if len(self.ids) >= self.cap:
            self.capped = True
            return
        self.ids.add(id(o))
        if self.keep:
            self.objects.append(o)
        if kind == "function":          # its code is ours: the function was made from it
            forced.add(id(o.__code__))
            stack.append(o.__code__)
        elif kind == "class":
            # a class a snippet makes per call (watch's or tt's probe) is referenced by no root
            # once its call ends, until the collector runs: it is found as a subclass of ours
            stack.extend(_subclasses(o))
        elif kind == "instance":
            self._block_target_refs(o, passed)

    def _roots(self, ids):
        """(the objects the walk starts from, the ids of those that are ours whatever their
        kind); the frames of our threads go straight into ids (their locals are not walked)."""
        agent = sys.__dict__.get("_peeka_agent")
        roots = [agent, sys.__dict__.get("_peeka_at_fork")]
        roots += [m for n, m in list(sys.modules.items()) if n in self.imported]
        idents = set(getattr(agent, "thread_idents", ()) or ())
        frames = sys._current_frames()
        try:
            for ident in idents:
                frame = frames.get(ident)
                while frame is not None:
                    ids.add(id(frame))
                    frame = frame.f_back
        finally:
            frames = frame = None       # our frame in a dict of our locals would be a cycle
        roots = [r for r in roots if r is not None]
        return roots, set(id(r) for r in roots)

    def _ours(self, name):
        return type(name) is str and (name.startswith(OUR_PREFIX) or name in self.imported)

    def _kind(self, o, plain):
        """How o is ours (None: it is not), asked without running any of its code."""
        t = type(o)
        if id(t) in plain:
            if t is dict:
                name = dict.get(o, "__name__")
                return "plain" if type(name) is not str or self._ours(name) else None
            return "plain"
        if t is _FUNCTION:
            return "function" if self._ours(dict.get(o.__globals__, "__name__")) else None
        if t is _FRAME:
            return None                 # only our threads' frames are ours (roots)
        if reflect.is_module(o):
            return "module" if self._ours(reflect.module_dict(o).get("__name__")) else None
        if reflect.is_class(o):
            return "class" if self._ours(_module_of(o)) else None
        return "instance" if self._ours(_module_of(t)) else None

    @staticmethod
    def _block_target_refs(o, blocked):
        """What an instance of ours holds of the target's: named by its class's HOLDS_TARGET."""
        t = type(o)
        names = reflect.lookup(t, "HOLDS_TARGET")
        for name in (names if type(names) is tuple else ()):
            held = reflect.lookup(t, name)
            if type(held) is reflect.MEMBER:
                try:
                    held = held.__get__(o, t)
                except AttributeError:
                    continue
            else:
                held = reflect.fields(o).get(name)
            if held is not None:
                blocked.add(id(held))

    def without(self, chunk):
        """The chunk less our objects (counted)."""
        ids = self.ids
        kept = [o for o in chunk if id(o) not in ids]
        self.left_out += len(chunk) - len(kept)
        return kept

    def done(self):
        """The walk is over: the ids and objects are dropped, the counts stay."""
        self.ids = self.objects = self._callers = None

    def report(self):
        return {"peeka_objects_left_out": self.left_out, "peeka_objects_found": self.found,
                "peeka_find_ms": self.find_ms, "peeka_cap": self.cap, "peeka_cap_reached": self.capped}


_subclasses = type.__dict__["__subclasses__"]        # type's own: no metaclass of the target's
_C_METHOD = type(object.__dict__["__sizeof__"])     # a method written in C (method_descriptor)
_basicsize = type.__dict__["__basicsize__"].__get__
# What getsizeof adds to a collected object's own struct (the collector's header, on 3.12+
# also the managed dict and weakref pointers before it): used for objects sized by their type.
_HEADER = sys.getsizeof([]) - _basicsize(list)
SIZING = ("shallow bytes: sys.getsizeof where the type's __sizeof__ is C code, else the type's "
          "basic size (a __sizeof__ written in Python is the target's code and is not called)")


def size_rule(t):
    """How objects of type t are sized: None for sys.getsizeof (its __sizeof__ is C code, no
    target code runs), else the fixed size of its struct (a __sizeof__ written in Python)."""
    if type(reflect.lookup(t, "__sizeof__")) is _C_METHOD:
        return None
    return _basicsize(t) + _HEADER


class Census(object):
    """The tracked objects counted by type: count and shallow bytes per type (keyed by the
    type's id: types are never hashed, a metaclass may define __hash__), walked in chunks."""

    def __init__(self, cancelled, pauses, keep=None, keep_types=(), ours=None):
        """keep(obj, size), when given, sees every object whose type is a subclass of one of
        `keep_types` (e.g. the biggest containers); peeka's objects are left out (`ours`: an
        Ours to use, e.g. one that knows the modules the command imported)."""
        self.cancelled, self.pauses = cancelled, pauses
        self.ours = Ours() if ours is None else ours
        self.keep, self.keep_types = keep, keep_types
        self.types, self.counts, self.sizes = None, None, None
        self.objects = self.bytes = 0
        self.taken_at = self.walk_ms = None

    def take(self):
        """Walks the heap once; the census's own dicts are made after the snapshot list, so they
        are not in it."""
        self.pauses.start()
        started = time.perf_counter()
        chunks = tracked_objects(self.cancelled, self.pauses, CENSUS_CHUNK, self.ours)
        first = next(chunks, [])
        self.taken_at = time.perf_counter()
        self.types, self.counts, self.sizes = {}, {}, {}
        rules, kept = {}, {}
        chunk = first
        while True:
            self._count(chunk, rules, kept)
            chunk = next(chunks, None)
            if chunk is None:
                break
        self.pauses.stop()
        if not self.ours.keep:
            self.ours.done()
        self.bytes = sum(self.sizes.values())
        self.discount((self,))          # made before the snapshot: it is in it
        self.walk_ms = round((time.perf_counter() - started) * 1000, 1)
        return self

    def _count(self, chunk, rules, kept):
        types, counts, sizes, getsizeof = self.types, self.counts, self.sizes, sys.getsizeof
        is_tracked, atomic = gc.is_tracked, 0
        for o in chunk:
            t = type(o)
            if t is tuple and not any(map(is_tracked, o)):
                # the collector untracks such a tuple the next time it looks at it: counting it
                # would make counts depend on when it last ran (e.g. the names and constants of
                # freshly compiled code, which no walk can reach: code objects are not tracked)
                atomic += 1
                continue
            k = id(t)
            rule = rules.get(k, rules)
            if rule is rules:
                rule = rules[k] = size_rule(t)
                types[k], counts[k], sizes[k] = t, 0, 0
                kept[k] = self.keep is not None and issubclass(t, self.keep_types)
            if rule is None:
                try:
                    size = getsizeof(o)
                except Exception:          # a C type whose __sizeof__ refuses: its struct
                    size = _basicsize(t) + _HEADER
            else:
                size = rule
            counts[k] += 1
            sizes[k] += size
            if kept[k]:
                self.keep(o, size)
        self.objects += len(chunk) - atomic

    def own_containers(self):
        """The census's own dicts and finder (to leave out of a later census that walks them)."""
        return (self.types, self.counts, self.sizes, self.ours)

    def discount(self, objs):
        """Takes objects of ours that this census walked back out of its counts."""
        for o in objs:
            k = id(type(o))
            if self.counts.get(k, 0) > 0:
                size = sys.getsizeof(o)
                self.counts[k] -= 1
                self.sizes[k] -= size
                self.objects -= 1
                self.bytes -= size
