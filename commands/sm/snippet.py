# sm: search the methods of loaded classes. Runs in the agent; the classes
# library finds the classes and reads them without running the target's code.
from fnmatch import fnmatchcase
import types

REQUIRES = ("errors", "reflect", "names")


def run(ctx, args):
    classes = ctx.agent.lib("classes")
    return classes.timed(search_methods, ctx, args)


def search_methods(ctx, args):
    lib = ctx.agent.lib("classes")
    pattern, limit, detail = lib.class_pattern(args), lib.limit_of(args), bool(args.get("detail"))
    method_pattern = args.get("method_pattern") or "*"
    found, _ = lib.search_classes(pattern, lib.LIMIT_MAX)
    if not found:
        raise errors.CommandError("no loaded class matches '%s' (peeka never imports: is its module loaded? "
                                  "try: peeka sc '*%s*')" % (pattern, pattern.rsplit(".", 1)[-1]), code="NOT_FOUND")
    items, total = [], 0
    for cls in found:
        for name, value in sorted(reflect.type_dict(cls).items()):
            kind = lib.kind_of(value)
            if kind is None or not fnmatchcase(name, method_pattern):
                continue
            if name.startswith("__") and name != "__init__" and method_pattern == "*":
                continue        # dunders only when asked for by name
            total += 1
            if len(items) < limit:
                items.append(describe_method(lib, cls, name, value, kind, detail))
    return {"pattern": pattern, "method_pattern": method_pattern, "methods": items, "count": len(items),
            "total": total, "limit": limit, "classes": len(found)}


def describe_method(lib, cls, name, value, kind, detail):
    fn = lib.function_of(value)
    owner = names.full_name(cls)
    item = {"name": "%s.%s" % (owner, name), "class": owner, "method": name, "kind": kind,
            "signature": lib.signature(fn) if type(fn) is types.FunctionType else None}
    if detail:
        code = lib.code_of(value)
        item.update({"file": code.co_filename if code else None, "line": code.co_firstlineno if code else None,
                     "decorators": lib.decorators(value),
                     "doc": lib.first_line(fn.__doc__ if type(fn) is types.FunctionType else None)})
    return item
