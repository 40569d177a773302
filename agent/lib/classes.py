# peeka agent library "classes": the classes and methods already loaded in the
# target, for sc and sm. Nothing is imported and no code of the target runs: only
# module and class __dict__s are read (never getattr on a class, which a metaclass
# could intercept, nor vars() of a module, which loads a lazily loaded one): the modules
# come from `names`, the dictionaries and type slots from `reflect`. Kinds are asked of
# an object's real type, never with isinstance (which asks a proxy its __class__).
import time
import types
from fnmatch import fnmatchcase

REQUIRES = ("errors", "reflect", "names")

LIMIT_MAX = 10000


def loaded_classes():
    """Every class defined in a loaded module (nested classes too), each once."""
    seen, out = set(), []
    for _, module in names.loaded_modules():
        try:
            items = list(reflect.module_dict(module).values())
        except Exception:
            continue
        for value in items:
            if reflect.is_class(value) and id(value) not in seen:
                _collect(value, seen, out, 0)
    return out


def _collect(cls, seen, out, depth):
    seen.add(id(cls))
    out.append(cls)
    if depth < 5:
        # a C type its module never used has no dict yet on 3.8-3.11 (e.g. _socket.socket)
        for value in list((reflect.type_dict(cls) or {}).values()):
            if reflect.is_class(value) and id(value) not in seen and _own_name(value).startswith(_own_name(cls) + "."):
                _collect(value, seen, out, depth + 1)


def _own_name(cls):
    qual = reflect.type_dict(cls).get("__qualname__") or reflect.type_name(cls)
    return qual if type(qual) is str else reflect.type_name(cls)


def class_matches(cls, pattern):
    if fnmatchcase(names.full_name(cls), pattern):
        return True
    return "." not in pattern and fnmatchcase(reflect.type_name(cls), pattern)


def code_of(value):
    fn = function_of(value)
    return fn.__code__ if type(fn) is types.FunctionType else None


def function_of(value):
    """The function behind a class attribute (staticmethod, classmethod, property getter), read
    through the base type's own slot (a subclass may shadow __func__ or fget with code)."""
    kind = type(value)
    if issubclass(kind, staticmethod):
        return reflect.static_function(value)
    if issubclass(kind, classmethod):
        return reflect.class_function(value)
    if issubclass(kind, property):
        return reflect.property_getter(value)
    return value


def kind_of(value):
    kind = type(value)
    if issubclass(kind, staticmethod):
        return "staticmethod"
    if issubclass(kind, classmethod):
        return "classmethod"
    if issubclass(kind, property):
        return "property"
    if kind is types.FunctionType:
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


def decorators(value):
    """What wraps the function: staticmethod/classmethod/property and functools.wraps layers."""
    out = []
    kind = kind_of(value)
    if kind in ("staticmethod", "classmethod", "property"):
        out.append(kind)
    fn = function_of(value)
    for _ in range(10):
        wrapped = fn.__dict__.get("__wrapped__") if type(fn) is types.FunctionType else None
        if wrapped is None:
            break
        out.append("wrapped by %s.%s" % (fn.__module__, fn.__qualname__))
        fn = wrapped
    return out


def first_line(doc):
    return doc.strip().splitlines()[0][:200] if type(doc) is str and doc.strip() else None


def search_classes(pattern, limit):
    found = sorted((c for c in loaded_classes() if class_matches(c, pattern)),
                   key=names.full_name)
    return found[:limit], len(found)


def class_pattern(args):
    pattern = args.get("pattern")
    if not isinstance(pattern, str) or not pattern.strip():
        raise errors.CommandError("a class pattern is required, e.g. 'myapp.*Service'", code="BAD_ARGS")
    return pattern.strip()


def limit_of(args):
    limit = args.get("limit")
    limit = 50 if limit is None else int(limit)
    if not 1 <= limit <= LIMIT_MAX:
        raise errors.CommandError("--limit must be between 1 and %d" % LIMIT_MAX, code="BAD_ARGS")
    return limit


def timed(run, ctx, args):
    """run(ctx, args)'s result with the time it took (elapsed_ms)."""
    started = time.perf_counter()
    result = run(ctx, args)
    result["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result
