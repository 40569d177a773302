# Agent library `names`: dotted names and the target's objects, in both directions, looking only
# at what is loaded. resolve() finds the functions a pattern such as 'module.Class.method' names
# (watch, stack, monitor, trace through instrument), longest_loaded() the module a dotted path
# starts with (inspect), loaded_modules() and full_name() what sc and sm search and show.
# Nothing is imported and no code of the target runs: module and type dictionaries are read
# (through reflect), never getattr on a module or a class, so no __getattr__, property or lazy
# import runs; kinds are asked of an object's real type (issubclass(type(x), ...)), never with
# isinstance, which asks a proxy its __class__.
import sys
import types

REQUIRES = ("reflect",)

NOT_LOADED = "module '%s' is not loaded in the target (peeka never imports it)"
_HINT = "use module.function, module.Class.method or module.Class.*"
_C_TYPES = (types.BuiltinFunctionType, types.WrapperDescriptorType, types.MethodWrapperType,
            types.MethodDescriptorType, types.ClassMethodDescriptorType)
_MISSING = object()


class ResolveError(Exception):
    """A refusal: code is 'BAD_PATTERN', 'NOT_LOADED', 'NOT_FOUND' or 'NOT_INSTRUMENTABLE';
    str(e) is a one-line message for the user."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code


class Function(object):
    """A Python function a pattern names: its full name, the function, how it is bound
    ('function', 'method', 'staticmethod' or 'classmethod') and its code."""
    __slots__ = ("name", "func", "binding", "code")

    def __init__(self, name, func, binding, code):
        self.name, self.func, self.binding, self.code = name, func, binding, code


# ---- a pattern -> the functions it names --------------------------------------------------------
def resolve(pattern, error=ResolveError, code_of=None):
    """The functions 'module.func', 'module.Class.method', 'module.Outer.Inner.method' or
    'module.Class.*' names, each code once ([Function]). Refusals raise error(code, message).
    code_of(func) is the code that identifies a function (func.__code__ by default)."""
    parts = _parse(pattern, error)
    star = parts[-1] == "*"
    names = parts[:-1] if star else parts
    found, seen, refusal = [], set(), None
    for module, used in module_scopes(names, error):
        try:
            functions = _resolve_in(module, names, used, star, error, code_of)
        except error as e:
            refusal = refusal or e
            continue
        for f in functions:
            if id(f.code) not in seen:
                seen.add(id(f.code))
                found.append(f)
    if not found:
        raise refusal
    return found


def _parse(pattern, error):
    if not isinstance(pattern, str) or not pattern.strip():
        raise error("BAD_PATTERN", "empty pattern; " + _HINT)
    parts = pattern.strip().split(".")
    for i, part in enumerate(parts):
        if not (part.isidentifier() or (part == "*" and i == len(parts) - 1)):
            raise error("BAD_PATTERN", "bad pattern '%s': '%s' is not a Python name; %s" % (pattern, part, _HINT))
    if len(parts) < 2:
        raise error("BAD_PATTERN", "name the module too, e.g. 'mymodule.%s'" % parts[0])
    if parts[-1] == "*" and len(parts) < 3:
        raise error("BAD_PATTERN", "'%s': a whole module cannot be watched; name a function or a"
                    " class (module.Class.*)" % pattern)
    return parts


# ---- modules ------------------------------------------------------------------------------------
def loaded_module(name):
    """sys.modules[name] when it is a module, else None."""
    module = sys.modules.get(name)
    return module if reflect.is_module(module) else None


def loaded_modules():
    """[(name, module)] of every module in sys.modules (a snapshot: imports go on meanwhile)."""
    return [(name, module) for name, module in list(sys.modules.items())
            if reflect.is_module(module)]


def longest_loaded(parts):
    """(module name, how many parts it covers) of the longest loaded prefix of `parts`, or None.
    A script run as `python app.py` is __main__: 'app.X' is found there, as module_scopes does."""
    main = sys.modules.get("__main__")
    for used in range(len(parts), 0, -1):
        name = ".".join(parts[:used])
        if loaded_module(name) is not None:
            return name, used
        if main is not None and _is_main_named(main, name):
            return "__main__", used
    return None


def module_scopes(names, error=ResolveError):
    """[(module, how many names it covers)] for the longest loaded prefix. A script run as
    `python app.py` is __main__: 'app.f' looks there too (or only there if 'app' is not loaded)."""
    main = sys.modules.get("__main__")
    for used in range(len(names), 0, -1):
        modname = ".".join(names[:used])
        module = loaded_module(modname)
        if module is not None:
            path = _file_of(module)
            if main is not None and main is not module and path is not None and path == _file_of(main):
                return [(module, used), (main, used)]
            return [(module, used)]
        if main is not None and _is_main_named(main, modname):
            return [(main, used)]
    guess = names[:-1]
    for i in range(1, len(guess)):
        if guess[i][:1].isupper():  # 'pkg.mod.Class.meth': the module is 'pkg.mod'
            guess = guess[:i]
            break
    raise error("NOT_LOADED", NOT_LOADED % ".".join(guess))


def _file_of(module):
    import os
    path = reflect.module_dict(module).get("__file__") if reflect.is_module(module) else None
    return os.path.realpath(path) if type(path) is str else None


def _is_main_named(main, modname):
    import os
    spec = reflect.module_dict(main).get("__spec__") if reflect.is_module(main) else None
    if spec is not None and reflect.fields(spec).get("name") == modname:   # python -m modname
        return True
    path = _file_of(main)
    stem, tail = os.path.splitext(path or "")[0], modname.replace(".", os.sep)
    return path is not None and (stem == tail or stem.endswith(os.sep + tail))


# ---- one name after the other -------------------------------------------------------------------
def _resolve_in(module, names, used, star, error, code_of):
    obj, owner = module, None
    for i in range(used, len(names)):
        value, owner = lookup(obj, names[i])
        if value is _MISSING:
            raise _missing(obj, names, i, error)
        obj = value
    if star:
        return _class_functions(obj, ".".join(names), error, code_of)
    return [_function(obj, owner, ".".join(names), error, code_of)]


def lookup(obj, name):
    """(value, defining class or None) of obj.name ((_MISSING, None) when absent), without running
    any code of the target: no __getattr__, no properties, no lazy imports."""
    if reflect.is_module(obj):
        return reflect.module_dict(obj).get(name, _MISSING), None
    if not reflect.is_class(obj):
        own = reflect.fields(obj)
        if name in own:
            return own[name], None
        obj = type(obj)
    for klass in reflect.type_mro(obj):
        d = reflect.type_dict(klass)
        if name in d:
            return d[name], klass
    return _MISSING, None


def _missing(obj, names, i, error):
    where, full = ".".join(names[:i]), ".".join(names[:i + 1])
    if reflect.is_module(obj) and "__path__" in reflect.module_dict(obj) and i + 1 < len(names):
        return error("NOT_LOADED", NOT_LOADED % full)   # a submodule nobody imported
    message = "%s is fine but '%s' does not exist" % (where, full)
    try:
        import difflib
        close = difflib.get_close_matches(names[i], [k for k in _names_in(obj) if type(k) is str], 3)
        if close:
            message += "; did you mean %s?" % " or ".join("'%s.%s'" % (where, c) for c in close)
    except Exception:
        pass
    return error("NOT_FOUND", message)


def _names_in(obj):
    """The attribute names lookup() can find on obj (dir() would run a metaclass's __dir__)."""
    if reflect.is_module(obj):
        return list(reflect.module_dict(obj))
    if reflect.is_class(obj):
        return list(dict.fromkeys(k for klass in reflect.type_mro(obj) for k in list(reflect.type_dict(klass))))
    return list(reflect.fields(obj))


def _class_functions(cls, prefix, error, code_of):
    """Class.*: the Python functions defined in the class itself, static and class methods
    included, dunders excluded but __init__ and __call__."""
    if not reflect.is_class(cls):
        raise error("BAD_PATTERN", "'%s.*': '*' may only follow a class, and %s is %s" % (prefix, prefix, _a(cls)))
    out = []
    for attr, value in list(reflect.type_dict(cls).items()):
        if attr[:2] == attr[-2:] == "__" and attr not in ("__init__", "__call__"):
            continue
        if issubclass(type(value), (types.FunctionType, staticmethod, classmethod)):
            try:
                out.append(_function(value, cls, prefix + "." + attr, error, code_of))
            except error:
                pass                # e.g. a staticmethod around a C function
    if not out:
        raise error("NOT_FOUND", "%s defines no Python functions of its own" % prefix)
    return out


def _function(obj, owner, name, error, code_of):
    func, binding = _unwrap(obj, "function" if owner is None else "method")
    if type(func) is not types.FunctionType:
        raise error("NOT_INSTRUMENTABLE", _refusal(func, name))
    return Function(name, func, binding, code_of(func) if code_of is not None else func.__code__)


def _unwrap(obj, binding):
    """Descriptors, bound methods and decorators (__wrapped__) down to the function named."""
    last_function = None
    for _ in range(64):
        kind = type(obj)
        if issubclass(kind, staticmethod):     # read through the base's slot: a subclass may
            obj, binding = reflect.static_function(obj), "staticmethod"    # shadow __func__ with code
        elif issubclass(kind, classmethod):
            obj, binding = reflect.class_function(obj), "classmethod"
        elif kind is types.MethodType:
            binding = "classmethod" if reflect.is_class(obj.__self__) else "method"
            obj = obj.__func__
        else:
            if kind is types.FunctionType:
                last_function = obj
            inner = reflect.fields(obj).get("__wrapped__", _MISSING)
            if inner is _MISSING:
                break
            obj = inner
    if type(obj) is not types.FunctionType and last_function is not None:
        obj = last_function         # a Python wrapper around C code: watch the wrapper
    return obj, binding


def _refusal(obj, name):
    cls = type(obj)
    if issubclass(cls, type):
        return "%s is a class; watch %s.__init__ or %s.* instead" % (name, name, name)
    if issubclass(cls, _C_TYPES):
        return ("%s is a built-in function (C code) and cannot be instrumented; watch a Python function that"
                " calls it instead" % name)
    if issubclass(cls, types.ModuleType):
        return "%s is a module; watch one of its functions (%s.<function>)" % (name, name)
    if issubclass(cls, property):
        return "%s is a property; watch a function its getter calls instead" % name
    if type(reflect.lookup(cls, "__call__")) is types.FunctionType:    # what getattr(cls, ...) finds
        return "%s is a callable %s object; watch %s.__call__ instead" % (
            name, reflect.type_simple_name(cls), full_name(cls))
    return "%s is %s, not a Python function" % (name, _a(obj))


def _a(obj):
    kind = reflect.type_simple_name(type(obj))
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


# ---- an object -> its dotted name ---------------------------------------------------------------
def full_name(cls):
    """'module.QualName' of a class, read from its type slots (right for C types too)."""
    module, qual = reflect.type_module(cls), reflect.type_name(cls)
    return "%s.%s" % (module, qual) if type(module) is str else qual
