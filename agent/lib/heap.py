# peeka agent library "heap": walking every object the garbage collector tracks
# without stopping the target for the whole walk (shared by inspect and memory), and counting
# them by type without running the target's code (memory --growth, --by-module).
import gc
import sys
import time

REQUIRES = ("reflect",)

CHUNK = 20000            # objects examined between two GIL releases
CENSUS_CHUNK = 5000      # a census does more per object (~1-1.5 us): smaller chunks, ~5 ms each


def tracked_objects(cancelled, pauses=None, chunk=CHUNK):
    """Every object the collector tracks, a chunk at a time: between chunks the GIL is released
    (the target's threads run) and the walk ends early once `cancelled` is set. The snapshot
    list pins every object, so it is dropped as soon as the walk ends. `pauses` (a Pauses), when
    given, times each stretch the walk keeps the GIL, and the GIL is released once more right
    after the snapshot list is made (one C call that holds it throughout)."""
    objects = gc.get_objects()
    try:
        if pauses is not None:
            pauses.release()
        for i in range(0, len(objects), chunk):
            yield objects[i:i + chunk]
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

    def __init__(self, cancelled, pauses, keep=None, keep_types=()):
        """keep(obj, size), when given, sees every object whose type is a subclass of one of
        `keep_types` (e.g. the biggest containers)."""
        self.cancelled, self.pauses = cancelled, pauses
        self.keep, self.keep_types = keep, keep_types
        self.types, self.counts, self.sizes = None, None, None
        self.objects = self.bytes = 0
        self.taken_at = self.walk_ms = None

    def take(self):
        """Walks the heap once; the census's own dicts are made after the snapshot list, so they
        are not in it."""
        self.pauses.start()
        started = time.perf_counter()
        chunks = tracked_objects(self.cancelled, self.pauses, CENSUS_CHUNK)
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
        self.bytes = sum(self.sizes.values())
        self.discount((self,))          # made before the snapshot: it is in it
        self.walk_ms = round((time.perf_counter() - started) * 1000, 1)
        return self

    def _count(self, chunk, rules, kept):
        types, counts, sizes, getsizeof = self.types, self.counts, self.sizes, sys.getsizeof
        for o in chunk:
            t = type(o)
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
        self.objects += len(chunk)

    def own_containers(self):
        """The census's own dicts (to leave out of a later census that walks them)."""
        return (self.types, self.counts, self.sizes)

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
