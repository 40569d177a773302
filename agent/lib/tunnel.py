# peeka agent library "tunnel": the store of `tt` (time tunnel) — recorded calls kept in the
# agent after the CLI that recorded them has gone, in a ring bounded by a number of records
# and by bytes, until `tt --clear`, `reset` or detach.
#
# A record is what the serialiser made of the call at the moment it happened (JSON-safe data,
# our own objects) and, only with --keep-objects, references to the call's own objects (for
# replay). Both are counted against the byte budget: the serialised part by sys.getsizeof of
# our objects, the kept objects by an estimate that reads them through the builtin types' C
# methods (no __sizeof__, __len__ or property of the target's classes runs).
import collections
import sys

REQUIRES = ("real", "reflect")

FIRST_INDEX = 1000         # the first record's index (later ones count up, never reused)
OBJECT_WALK = 256          # objects looked at when estimating what kept references cost
SAMPLE_ITEMS = 32          # items of a container sized one by one; the rest extrapolated
_GC_HEAD = sys.getsizeof([]) - [].__sizeof__()    # what getsizeof adds to a tracked object
_SIZED = (str, bytes, bytearray, list, tuple, dict, set, frozenset, int, float, complex)
_SIZED_IDS = dict((id(t), t) for t in _SIZED)
_CONTAINERS = (list, tuple, set, frozenset, dict)
_NOT_WALKED = (type, type(sys), type(len), type(lambda: 0))   # shared with the program anyway


class Record(object):
    """One recorded call: `data` (what tt shows), `objects` ((func, args, kwargs, self_obj,
    skip_first, kind) or None), `size` (bytes counted), `arg_names` (--search by parameter name)."""
    __slots__ = ("index", "data", "objects", "size", "arg_names")
    HOLDS_TARGET = ("objects",)     # the target's own objects: heap walks (heap.Ours) count them

    def __init__(self, data, objects, size, arg_names):
        self.index, self.data, self.objects, self.size, self.arg_names = None, data, objects, size, arg_names


class Tunnel(object):
    """The ring: add() from the target's threads, the rest from the agent's; one lock."""

    def __init__(self, max_records, max_bytes):
        self.lock = real.allocate_lock()
        self.records = collections.deque()   # oldest first; indexes consecutive
        self.next_index = FIRST_INDEX
        self.bytes = 0
        self.max_records, self.max_bytes = max_records, max_bytes
        self.evicted = 0        # records pushed out by newer ones (count or bytes)
        self.too_big = 0        # calls whose record alone exceeded the byte budget: not kept
        self.objects_dropped = 0   # records kept without their objects (over the budget)
        self.recordings = {}    # recording id -> its stop event (set when the ring is closed)
        self.closed = False     # after close(): nothing more is added (a fresh ring is made)

    def limit(self, max_records, max_bytes):
        """New bounds (a new recording's options): what no longer fits is evicted now."""
        with self.lock:
            self.max_records, self.max_bytes = max_records, max_bytes
            self._evict()

    def add(self, record):
        """Numbers and keeps a record (evicting the oldest to make room); None if the record
        alone is bigger than the whole budget."""
        with self.lock:
            if self.closed:
                return None
            if record.size > self.max_bytes:
                self.too_big += 1
                return None
            record.index = record.data["index"] = self.next_index
            self.next_index += 1
            self.records.append(record)
            self.bytes += record.size
            self._evict()
            return record

    def _evict(self):
        while self.records and (len(self.records) > self.max_records or self.bytes > self.max_bytes):
            old = self.records.popleft()
            self.bytes -= old.size
            old.objects = None
            self.evicted += 1

    def get(self, index):
        with self.lock:
            records = self.records
            i = index - records[0].index if records else -1
            return records[i] if 0 <= i < len(records) else None

    def all(self):
        with self.lock:
            return list(self.records)

    def clear(self):
        """Drops every record (and so every reference to the target's objects); returns how many."""
        with self.lock:
            n = len(self.records)
            for r in self.records:
                r.objects = None
            self.records.clear()
            self.bytes = 0
            return n

    def close(self):
        """tt --clear, reset, detach: the recordings into this ring stop, it takes nothing more
        and drops every record; returns how many it held."""
        with self.lock:
            self.closed = True
            stops = list(self.recordings.values())
        for stop in stops:
            stop.set()
        return self.clear()

    def stats(self):
        with self.lock:
            return {"records": len(self.records), "bytes": self.bytes, "max_records": self.max_records,
                    "max_bytes": self.max_bytes, "evicted": self.evicted, "too_big": self.too_big,
                    "objects_dropped": self.objects_dropped,
                    "first": self.records[0].index if self.records else None, "next": self.next_index}


def data_size(value):
    """Bytes of JSON-safe data we built (our own dicts, lists, str, numbers), by sys.getsizeof;
    what is shared is not counted: None, booleans, the small ints CPython caches, and dict keys
    (the serialiser keeps the target's own key strings, the record's keys are constants)."""
    t = type(value)
    if value is None or t is bool or (t is int and -5 <= value <= 256):
        return 0
    if t is not dict and t is not list:
        return sys.getsizeof(value)
    total, stack, getsizeof = 0, [value], sys.getsizeof
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            total += getsizeof(v)
            stack.extend(v.values())
        elif t is list:
            total += getsizeof(v)
            stack.extend(v)
        elif not (v is None or t is bool or (t is int and -5 <= v <= 256)):
            total += getsizeof(v)
    return total


def held_size(objects):
    """An estimate of the memory that references to `objects` (the target's) may keep alive:
    builtin values and containers by their types' own __sizeof__, instances with their
    __dict__, at most OBJECT_WALK objects looked at; a container's items beyond SAMPLE_ITEMS
    are counted as the average of those sampled. Runs none of the target's code."""
    total, seen, stack = 0, set(), list(objects)
    while stack and len(seen) < OBJECT_WALK:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        t = type(o)
        if issubclass(t, _NOT_WALKED):
            continue
        base = reflect.builtin_base(t, _SIZED_IDS)
        total += (base or object).__sizeof__(o) + _GC_HEAD
        if base in _CONTAINERS:
            total += _items_size(o, base, stack)
        elif base is None:
            d = reflect.instance_dict(o, t)
            if d is not None:
                stack.append(d)
    return total


def _items_size(o, base, stack):
    """The first SAMPLE_ITEMS items go on the walk; the others are extrapolated from them."""
    items = reflect.first_items(dict.items(o) if base is dict else base.__iter__(o), SAMPLE_ITEMS)
    if base is dict:
        items = [x for pair in items for x in pair]
    stack.extend(items)
    n, sampled = base.__len__(o), len(items) // (2 if base is dict else 1)
    if n <= sampled or not items:
        return 0
    each = sum(_shallow(x) for x in items) / float(sampled)
    return int(each * (n - sampled))


def _shallow(o):
    t = type(o)
    if issubclass(t, _NOT_WALKED):
        return 0
    return (reflect.builtin_base(t, _SIZED_IDS) or object).__sizeof__(o)
