# sc: search the classes that are already loaded. Runs in the agent; the classes
# library finds them and reads them without running the target's code.
import sys
import types

REQUIRES = ("reflect", "names")


def run(ctx, args):
    return ctx.agent.lib("classes").timed(search, ctx, args)


def search(ctx, args):
    lib = ctx.agent.lib("classes")
    pattern, limit, detail = lib.class_pattern(args), lib.limit_of(args), bool(args.get("detail"))
    found, total = lib.search_classes(pattern, limit)
    items = []
    for cls in found:
        item = {"name": names.full_name(cls)}
        if detail:
            item.update(describe_class(lib, cls))
        items.append(item)
    return {"pattern": pattern, "classes": items, "count": len(items), "total": total, "limit": limit}


def location(lib, cls):
    """(file, line) of a class: __firstlineno__ on 3.13+, else the first method's line."""
    module = sys.modules.get(_module_name(cls))
    file = reflect.module_dict(module).get("__file__") if reflect.is_module(module) else None
    file = file if type(file) is str else None
    line = reflect.type_dict(cls).get("__firstlineno__")
    if type(line) is not int:
        lines = [c.co_firstlineno for c in (lib.code_of(v) for v in reflect.type_dict(cls).values()) if c is not None]
        line = min(lines) if lines else None
    return file, line


def _module_name(cls):
    """The class's __module__ when it is a string (it is whatever the class body stored)."""
    name = reflect.type_module(cls)
    return name if type(name) is str else None


def describe_class(lib, cls):
    file, line = location(lib, cls)
    attrs = reflect.type_dict(cls)
    mro = [names.full_name(c) for c in reflect.type_mro(cls)]
    methods = sorted(n for n, v in attrs.items() if lib.kind_of(v) is not None)
    init = attrs.get("__init__")
    return {"module": _module_name(cls), "file": file, "line": line,
            "bases": [names.full_name(b) for b in reflect.type_bases(cls)], "mro": mro,
            "methods": methods, "signature": lib.signature(init) if type(init) is types.FunctionType else None,
            "doc": lib.first_line(attrs.get("__doc__"))}
