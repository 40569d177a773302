# inspect: show an object reached from a module global by a path, the live instances
# of a class, or what keeps an object (or a sample of a class's instances) alive.
# Paths are read step by step (attribute, [key], [index]), never evaluated;
# attributes are read the way conditions read them (no __getattr__, no code-running
# descriptor except a property's getter).
import re
import sys
import time
import types

REQUIRES = ("errors", "reflect", "names")

_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[\s*(-?\d+)\s*\]|\[\s*'([^']*)'\s*\]|\[\s*\"([^\"]*)\"\s*\]")
MAX_ATTRS = 200


class PathError(Exception):
    pass


def parse(path):
    """(module name, [(kind, key)]) where the module is the longest loaded dotted prefix."""
    if not isinstance(path, str) or not path.strip():
        raise errors.CommandError("a path is required, e.g. myapp.settings.CACHE", code="BAD_ARGS")
    path = path.strip()
    head = re.match(r"[A-Za-z_][\w.]*", path)
    if head is None:
        raise errors.CommandError("a path starts with a module name: %r" % path, code="BAD_ARGS")
    dotted = head.group(0).rstrip(".").split(".")
    loaded = names.longest_loaded(dotted)
    if loaded is None:
        raise errors.CommandError(names.NOT_LOADED % dotted[0], code="NOT_LOADED")
    name, used = loaded
    rest = "".join("." + p for p in dotted[used:]) + path[head.end():]
    return name, _steps(rest, path)


def _steps(rest, path):
    steps, pos = [], 0
    while pos < len(rest):
        m = _STEP.match(rest, pos)
        if m is None:
            raise errors.CommandError("cannot read %r in %r: use .name, [0] or ['key'] steps"
                                      % (rest[pos:], path), code="BAD_ARGS")
        attr, index, key1, key2 = m.groups()
        if attr is not None:
            steps.append(("attr", attr))
        elif index is not None:
            steps.append(("item", int(index)))
        else:
            steps.append(("item", key1 if key1 is not None else key2))
        pos = m.end()
    return steps


def follow(ser, module, steps):
    obj, where = sys.modules[module], module
    for kind, key in steps:
        if kind == "attr":
            if issubclass(type(obj), types.ModuleType):
                d = reflect.module_dict(obj)
                if key not in d:
                    raise PathError("%s has no global '%s'" % (where, key))
                obj = d[key]
            else:
                try:
                    obj = reflect.read_attribute(obj, key)
                except reflect.Unreadable as e:
                    raise PathError("%s: %s" % (where, e))
                except Exception as e:  # a property's getter raised
                    raise PathError("reading %s.%s raised %s: %s" % (where, key, reflect.type_name(type(e)),
                                                                    ser.safe_repr(str(e), 200)))
            where += "." + key
        else:
            obj = _item(obj, key, where)
            where += "[%r]" % (key,)
    return obj


def _item(obj, key, where):
    """A subscript of a builtin container only (a user __getitem__ is the target's code)."""
    for base in (dict, list, tuple):
        if issubclass(type(obj), base):
            try:
                return base.__getitem__(obj, key)
            except (KeyError, IndexError, TypeError):
                raise PathError("%s has no item %r" % (where, key))
    raise PathError("%s is a %s: only dict, list and tuple items can be read" % (where, reflect.type_name(type(obj))))


_SIZED = (dict, list, tuple, set, frozenset, str, bytes, bytearray)


def describe(ser, obj, depth):
    t = type(obj)
    info = {"type": reflect.qualified_name(t), "id": id(obj), "repr": ser.safe_repr(obj, 300)}
    try:
        info["size"] = sys.getsizeof(obj)
    except Exception:
        pass
    for base in _SIZED:
        if issubclass(t, base):
            info["len"] = base.__len__(obj)     # the builtin's own: a subclass's __len__ is the target's
            break
    info["value"] = ser.to_json(obj, depth=depth)
    attrs = _attributes(ser, obj)
    if attrs is not None:
        info["attributes"] = attrs
    return info


def _attributes(ser, obj):
    """Every attribute stored on the object (module globals, class dict, instance dict/slots)."""
    if issubclass(type(obj), types.ModuleType):
        pairs = [(k, v) for k, v in list(reflect.module_dict(obj).items()) if not k.startswith("__")]
    elif issubclass(type(obj), type):
        pairs = [(k, v) for k, v in list(reflect.type_dict(obj).items()) if not k.startswith("__")]
    else:
        pairs = reflect.stored_attributes(obj, type(obj), MAX_ATTRS, False)
        if pairs is None:
            return None
    return [{"name": k, "type": reflect.qualified_name(type(v)), "repr": ser.safe_repr(v, 120)}
            for k, v in pairs[:MAX_ATTRS]]


def instances(ctx, ser, heap, cls, limit, depth):
    """Live instances of cls, shown."""
    started = time.perf_counter()
    ours = heap.Ours()
    found, count, scanned = sample(ctx, heap, cls, limit, ours=ours)
    items = [dict(describe(ser, o, depth), index=n) for n, o in enumerate(found)]
    result = {"class": reflect.qualified_name(cls), "count": count, "shown": len(items), "limit": limit,
              "instances": items, "objects_scanned": scanned,
              "scan_ms": round((time.perf_counter() - started) * 1000, 1)}
    result.update(ours.report())
    return result


def sample(ctx, heap, cls, size, pauses=None, ours=None):
    """Up to `size` live instances of cls (subclasses included; the first the collector
    lists), how many there are and how many objects were looked at, peeka's own left out
    (`ours`: a heap.Ours). The walk releases the GIL between chunks so the target keeps running
    (timed by `pauses`, when given)."""
    count, found, scanned = 0, [], 0
    ours = heap.Ours() if ours is None else ours
    ours.include(found)
    for chunk in heap.tracked_objects(ctx.cancelled, pauses, ours=ours):
        for o in chunk:
            if cls in reflect.type_mro(type(o)):
                count += 1
                if len(found) < size:
                    found.append(o)
        scanned += len(chunk)
    return found, count, scanned


def _shown(obj):
    """An object named without running its code (no repr: it may be the target's)."""
    return {"type": reflect.qualified_name(type(obj)), "id": id(obj)}


def referrers_of(ctx, ser, args):
    """The chains of references that keep the object at `path` (or a sample of the instances
    of the class `type`) alive, through the agent library referrers."""
    lib = ctx.agent.lib("referrers")
    depth, limit, size = _bounded(args, "depth", 8, 1, 64), _bounded(args, "limit", 5, 1, 100), None
    budget = lib.Budget(seconds=_seconds(args), max_objects=_bounded(args, "max_objects", 100000, 10, 10000000),
                        cancelled=ctx.cancelled, sleep=ctx.agent.real.sleep)
    head, heap = {}, ctx.agent.lib("heap")
    ours = heap.Ours(keep=True)
    if args.get("type"):
        cls = _resolve(ser, args["type"])
        if not reflect.is_class(cls):
            raise errors.CommandError("%s is a %s, not a class" % (args["type"], reflect.type_name(type(cls))),
                                      code="BAD_ARGS")
        size = _bounded(args, "sample", 3, 1, 50)
        targets, count, _ = sample(ctx, heap, cls, size, budget, ours)
        head = {"class": reflect.qualified_name(cls), "count": count, "sample": size}
    else:
        targets = [_resolve(ser, args.get("path"))]
        ours.find(budget)           # the chains go through none of peeka's objects either
    # chains through peeka's objects are not the target's: the search leaves them out
    found = lib.chains_of(targets, depth, limit, budget, skip_idents=ctx.agent.thread_idents,
                          exclude=[targets] + ours.objects)
    ours.done()
    results = [dict(f, object=_shown(o)) for o, f in zip(targets, found)]
    head.update(ours.report())
    return dict(head, path=args.get("path") or args.get("type"), referrers=results, max_depth=depth, limit=limit,
                partial=any(r["partial"] for r in results), cost=budget.report())


def _bounded(args, name, default, low, high):
    value = args.get(name)
    value = default if value is None else value
    if type(value) is not int or not low <= value <= high:
        raise errors.CommandError("--%s must be %d..%d" % (name.replace("_", "-"), low, high), code="BAD_ARGS")
    return value


def _seconds(args):
    value = args.get("budget")
    value = 10.0 if value is None else value
    if type(value) not in (int, float) or not 0 < value <= 600:
        raise errors.CommandError("--budget must be a number of seconds in (0, 600]", code="BAD_ARGS")
    return float(value)


def _resolve(ser, path):
    module, steps = parse(path)
    try:
        return follow(ser, module, steps)
    except PathError as e:
        raise errors.CommandError(str(e), code="NOT_FOUND")


def run(ctx, args):
    ser = ctx.agent.lib("serialize")
    if args.get("referrers"):
        return referrers_of(ctx, ser, args)
    depth = int(args.get("depth") or 2)
    limit = args.get("limit")
    limit = 10 if limit is None else int(limit)
    if not 1 <= depth <= 6 or not 1 <= limit <= 1000:
        raise errors.CommandError("-x must be 1..6 and --limit 1..1000", code="BAD_ARGS")
    path = args.get("path")
    obj = _resolve(ser, path)
    if args.get("instances"):
        if not issubclass(type(obj), type):
            raise errors.CommandError("%s is a %s, not a class" % (path, reflect.type_name(type(obj))), code="BAD_ARGS")
        return dict(instances(ctx, ser, ctx.agent.lib("heap"), obj, limit, depth), path=path)
    return dict(describe(ser, obj, depth), path=path)
