# sc: search the classes that are already loaded (sm has its own snippet). Nothing is
# imported and no code of the target runs: only module and class __dict__s are
# read (never getattr on a class, which a metaclass could intercept).
import sys
import time
import types
from fnmatch import fnmatchcase

LIMIT_MAX = 10000


def loaded_classes():
    """Every class defined in a loaded module (nested classes too), each once."""
    seen, out = set(), []
    for modname, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType):
            continue
        try:
            items = list(vars(module).values())
        except Exception:
            continue
        for value in items:
            if isinstance(value, type) and id(value) not in seen:
                _collect(value, seen, out, 0)
    return out


def _collect(cls, seen, out, depth):
    seen.add(id(cls))
    out.append(cls)
    if depth < 5:
        for value in list(_dict(cls).values()):
            if isinstance(value, type) and id(value) not in seen and _own_name(value).startswith(_own_name(cls) + "."):
                _collect(value, seen, out, depth + 1)


def _dict(cls):
    d = type.__dict__["__dict__"].__get__(cls)
    return d


def _own_name(cls):
    qual = _dict(cls).get("__qualname__") or type.__dict__["__qualname__"].__get__(cls)
    return qual if isinstance(qual, str) else cls.__name__


def full_name(cls):
    module = type.__dict__["__module__"].__get__(cls)   # also right for C types (from tp_name)
    qual = type.__dict__["__qualname__"].__get__(cls)
    return "%s.%s" % (module, qual) if isinstance(module, str) else qual


def class_matches(cls, pattern):
    name = full_name(cls)
    if fnmatchcase(name, pattern):
        return True
    return "." not in pattern and fnmatchcase(type.__dict__["__qualname__"].__get__(cls), pattern)


def location(cls):
    """(file, line) of a class: __firstlineno__ on 3.13+, else the first method's line."""
    module = sys.modules.get(type.__dict__["__module__"].__get__(cls) or "")
    file = getattr(module, "__file__", None) if isinstance(module, types.ModuleType) else None
    line = _dict(cls).get("__firstlineno__")
    if not isinstance(line, int):
        lines = [c.co_firstlineno for c in (_code(v) for v in _dict(cls).values()) if c is not None]
        line = min(lines) if lines else None
    return file, line


def _code(value):
    fn = _function(value)
    return getattr(fn, "__code__", None) if isinstance(fn, types.FunctionType) else None


def _function(value):
    """The function behind a class attribute (staticmethod, classmethod, property getter)."""
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    if isinstance(value, property):
        return value.fget
    return value


def kind_of(value):
    if isinstance(value, staticmethod):
        return "staticmethod"
    if isinstance(value, classmethod):
        return "classmethod"
    if isinstance(value, property):
        return "property"
    if isinstance(value, types.FunctionType):
        return "async method" if value.__code__.co_flags & 0x80 else "method"
    return None


def signature(fn):
    """The parameters as written, from the code object (no inspect, no __signature__ lookups)."""
    try:
        code = fn.__code__
        names = code.co_varnames
        n_pos, n_kw = code.co_argcount, code.co_kwonlyargcount
        defaults = fn.__defaults__ or ()
        parts = []
        first_default = n_pos - len(defaults)
        for i in range(n_pos):
            parts.append(names[i] + ("=…" if i >= first_default else ""))
            if code.co_posonlyargcount and i == code.co_posonlyargcount - 1:
                parts.append("/")
        i = n_pos + n_kw
        if code.co_flags & 0x04:
            parts.append("*" + names[i])
            i += 1
        elif n_kw:
            parts.append("*")
        kwdefaults = fn.__kwdefaults__ or {}
        parts.extend(n + ("=…" if n in kwdefaults else "") for n in names[n_pos:n_pos + n_kw])
        if code.co_flags & 0x08:
            parts.append("**" + names[i])
        return "(%s)" % ", ".join(parts)
    except Exception:
        return None


def first_line(doc):
    return doc.strip().splitlines()[0][:200] if isinstance(doc, str) and doc.strip() else None


def describe_class(cls):
    file, line = location(cls)
    mro = [full_name(c) for c in type.__dict__["__mro__"].__get__(cls)]
    methods = sorted(n for n, v in _dict(cls).items() if kind_of(v) is not None)
    init = _dict(cls).get("__init__")
    return {"module": type.__dict__["__module__"].__get__(cls), "file": file, "line": line,
            "bases": [full_name(b) for b in type.__dict__["__bases__"].__get__(cls)], "mro": mro,
            "methods": methods, "signature": signature(init) if isinstance(init, types.FunctionType) else None,
            "doc": first_line(_dict(cls).get("__doc__"))}


def search_classes(pattern, limit):
    found = sorted((c for c in loaded_classes() if class_matches(c, pattern)), key=full_name)
    return found[:limit], len(found)


def run_sc(ctx, args):
    pattern, limit, detail = _pattern(args), _limit(args), bool(args.get("detail"))
    classes, total = search_classes(pattern, limit)
    items = []
    for cls in classes:
        item = {"name": full_name(cls)}
        if detail:
            item.update(describe_class(cls))
        items.append(item)
    return {"pattern": pattern, "classes": items, "count": len(items), "total": total, "limit": limit}


def _pattern(args):
    pattern = args.get("pattern")
    if not isinstance(pattern, str) or not pattern.strip():
        raise CommandError("a class pattern is required, e.g. 'myapp.*Service'", code="BAD_ARGS")  # noqa: F821
    return pattern.strip()


def _limit(args):
    limit = args.get("limit")
    limit = 50 if limit is None else int(limit)
    if not 1 <= limit <= LIMIT_MAX:
        raise CommandError("--limit must be between 1 and %d" % LIMIT_MAX, code="BAD_ARGS")  # noqa: F821
    return limit


def run(ctx, args):
    started = time.perf_counter()
    result = run_sc(ctx, args)
    result["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result
