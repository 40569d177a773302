# Agent library `serialize`: captured values -> JSON-safe data (dict/list/str/int/float/bool/None).
#
# Runs on the target's threads for every observation, so nothing here raises, and the only code
# of the target it runs is __repr__ (for values shown as text). Containers are read through the
# builtin types' own methods (never a subclass's __iter__/__len__/__getitem__), objects through
# their instance __dict__ and __slots__ (never __getattr__, __getattribute__ or properties), and
# types are compared by identity or issubclass, never hashed.
import sys

REQUIRES = ("reflect",)


def _cut(s, limit):
    return s if len(s) <= limit else s[:max(limit - 3, 0)] + "..."


# Shown by their repr: classes, functions, modules, exceptions (their message is in the repr).
_AS_TEXT = (type, type(sys), BaseException, type(str.join), type(object.__init__), type(_cut), type(len),
            type(_cut.__get__(0)), type(object().__str__))
_BUILTINS = (dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, bool)
_BUILTIN_IDS = dict((id(b), b) for b in _BUILTINS)
_INF = float("inf")
_INT_BITS = 14284           # about 4300 decimal digits: 3.8-3.10 would convert any size, slowly


def _big_int(o):
    import math
    return "<int with %d digits>" % (int(math.log10(abs(o))) + 1)


def qualified_name(obj):
    """reflect.qualified_name, as snippets that use serialize have called it."""
    return reflect.qualified_name(obj)


def safe_repr(obj, limit=200, _path=()):
    """repr(obj) cut to `limit` characters; never raises."""
    try:
        t = type(obj)
        if t is str:
            return _cut(repr(obj[:limit]), limit)
        if issubclass(t, int) and int.bit_length(obj) > _INT_BITS:
            return _big_int(obj)
        if t is list or t is tuple or t is dict or t is set or t is frozenset:
            return _cut(_container_repr(obj, t, limit, _path + (id(obj),)), limit)
        return _cut(repr(obj), limit)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        return "<%s object (repr failed: %s)>" % (reflect.type_name(type(obj)), reflect.type_name(type(e)))


def _container_repr(o, t, limit, path):
    """Like the builtin repr, but stops once `limit` characters are reached."""
    if not o:
        return repr(o)
    if len(path) > 6:
        return "[...]" if t is list else "(...)" if t is tuple else "{...}"
    head, tail = {list: ("[", "]"), tuple: ("(", ")"), frozenset: ("frozenset({", "})")}.get(t, ("{", "}"))
    parts, size = [], len(head)
    for item in (dict.items(o) if t is dict else o):
        if size > limit:
            parts.append("...")
            break
        room = max(limit - size, 8)
        if t is dict:
            key, value = item
            text = _elem_repr(key, room, path) + ": " + _elem_repr(value, room, path)
        else:
            text = _elem_repr(item, room, path)
        parts.append(text)
        size += len(text) + 2
    if t is tuple and len(o) == 1:
        tail = ",)"
    return head + ", ".join(parts) + tail


def _elem_repr(o, limit, path):
    return ("[...]" if type(o) is list else "{...}") if id(o) in path else safe_repr(o, limit, path)


class _Walker(object):
    __slots__ = ("depth", "max_str", "max_items", "budget", "active")

    def __init__(self, depth, max_str, max_items, max_bytes):
        self.depth, self.max_str, self.max_items, self.budget = depth, max_str, max_items, max_bytes
        self.active = set()        # ids of the containers being walked: a repeat is a cycle

    def text(self, s):
        n = len(s)
        room = min(self.max_str, max(self.budget - 2, 0))
        if n > room:
            s = s[:room] + "... (%d more chars)" % (n - room)
        self.budget -= len(s) + 2
        return s

    def value(self, o, level):
        if self.budget <= 0:
            return "<truncated>"
        t = type(o)
        if o is None or t is bool:
            self.budget -= 5
            return o
        exact = t is str or t is int or t is float or t is list or t is tuple or t is dict
        base = t if exact else reflect.builtin_base(t, _BUILTIN_IDS) if issubclass(t, _BUILTINS) else None
        if base is str:
            return self.text(o if t is str else str.__str__(o))
        if base is int:
            if int.bit_length(o) > _INT_BITS:
                return self.text(_big_int(o))
            self.budget -= 8
            return o if t is int else int.__int__(o)      # an exact int, e.g. of an IntEnum
        if base is float:
            self.budget -= 12
            o = o if t is float else float.__float__(o)
            return o if -_INF < o < _INF else "NaN" if o != o else "Infinity" if o > 0 else "-Infinity"
        if base is bytes or base is bytearray:
            n = base.__len__(o)
            if n > 100:
                return self.text("<bytes len=%d>" % n)
            self.budget -= 2 * n + 16
            return {"__bytes__": base.hex(o)}
        if id(o) in self.active:
            return "<cycle>"
        if level >= self.depth or (base is None and issubclass(t, _AS_TEXT)):
            return self.text(safe_repr(o))
        self.active.add(id(o))
        try:
            if base is dict:
                return self.mapping(o, level)
            if base is not None:
                return self.sequence(o, base, level)
            return self.instance(o, t, level)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # e.g. changed by another thread while read
            return self.text("<unserialisable %s: %s>" % (reflect.type_name(t), reflect.type_name(type(e))))
        finally:
            self.active.discard(id(o))

    def sequence(self, o, base, level):
        items = reflect.first_items(base.__iter__(o), self.max_items)
        self.budget -= 2
        out = []
        for item in items:
            if self.budget <= 0:               # one marker for all the rest
                out.append("<truncated>")
                break
            out.append(self.value(item, level + 1))
            self.budget -= 2
        more = base.__len__(o) - len(items)
        if more > 0 and self.budget > 0:
            out.append("... (%d more)" % more)
        return {"__set__": out} if base is set or base is frozenset else out

    def mapping(self, o, level):
        pairs = reflect.first_items(dict.items(o), self.max_items)   # a snapshot first: keys' __repr__ may run
        self.budget -= 2
        out = {}
        for key, value in pairs:
            if self.budget <= 0:
                out["..."] = "<truncated>"
                break
            key = key if type(key) is str else safe_repr(key)
            out[self.text(key)] = self.value(value, level + 1)
        more = dict.__len__(o) - len(pairs)
        if more > 0 and self.budget > 0:
            out["..."] = "(%d more)" % more
        return out

    def instance(self, o, t, level):
        attrs = reflect.stored_attributes(o, t, 10, True)
        if attrs is None:
            return self.text(safe_repr(o))
        name = reflect.qualified_name(t)
        self.budget -= len(name) + 30
        out = {}
        for key, value in attrs:
            self.budget -= len(key) + 4
            out[key] = self.value(value, level + 1)
        return {"__class__": name, "__attrs__": out}


def to_json(obj, depth=2, max_str=1000, max_items=20, max_bytes=65536):
    """obj as JSON-safe data; containers nested `depth` levels down and beyond become repr text."""
    t = type(obj)
    if obj is None or t is bool or (t is int and -(1 << 62) < obj < (1 << 62)) \
            or (t is str and len(obj) <= max_str and len(obj) < max_bytes):
        return obj
    if (t is list or t is tuple) and len(obj) <= max_items and depth > 0 and _all_plain(obj):
        return list(obj)            # the common case (arguments that are numbers and short text)
    if t is dict and not obj:
        return {}
    try:
        return _Walker(depth, max_str, max_items, max_bytes).value(obj, 0)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        return "<unserialisable: %s>" % reflect.type_name(type(e))


def _all_plain(items):
    for x in items:
        tx = type(x)
        if not (x is None or tx is bool or (tx is int and -(1 << 62) < x < (1 << 62)) or (tx is str and len(x) <= 200)):
            return False
    return True


def exception_info(exc, limit=20):
    """{"type", "message", "traceback": [{"file", "line", "function"}, ...]} with the innermost frame last."""
    try:
        message = str(exc)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        message = "<str() failed: %s>" % reflect.type_name(type(e))
    if type(message) is not str:
        message = safe_repr(message)
    frames = []
    try:
        tb = BaseException.__dict__["__traceback__"].__get__(exc) if issubclass(type(exc), BaseException) else None
        while tb is not None and len(frames) < 10000:
            frames.append(tb)
            tb = tb.tb_next
        frames = [{"file": tb.tb_frame.f_code.co_filename, "line": tb.tb_lineno,
                   "function": tb.tb_frame.f_code.co_name} for tb in frames[-limit:]] if limit > 0 else []
    except Exception:
        frames = []
    return {"type": reflect.qualified_name(type(exc)), "message": _cut(message, 1000), "traceback": frames}
