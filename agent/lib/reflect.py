# Agent library `reflect`: reading types and objects without running the target's code.
#
# Every command that looks at the target's objects (conditions, serialisation, inspect, sc/sm,
# name resolution) reads them through these helpers. A type's slots are read through `type`'s own
# descriptors (a metaclass may shadow __mro__, __dict__ or __qualname__ with code of its own), an
# attribute is found in the type dictionaries of the MRO and the instance dict without running
# __getattr__, __getattribute__ or a descriptor, and types are compared by identity, never hashed.
# The one exception is read_attribute's property getter (and only when not strict), as documented.
# This library requires none: the others are built on it.
import sys

type_mro = type.__dict__["__mro__"].__get__            # type slots read directly: a metaclass
type_dict = type.__dict__["__dict__"].__get__          # may shadow these attributes
type_module = type.__dict__["__module__"].__get__
type_bases = type.__dict__["__bases__"].__get__
type_name = type.__dict__["__qualname__"].__get__      # the qualified name of a type
type_simple_name = type.__dict__["__name__"].__get__   # its last part (what cls.__name__ says)
type_flags = type.__dict__["__flags__"].__get__
static_function = staticmethod.__dict__["__func__"].__get__   # what a staticmethod, classmethod
class_function = classmethod.__dict__["__func__"].__get__     # or property holds, through the
property_getter = property.__dict__["fget"].__get__           # base's slot (a subclass may shadow it)
HEAPTYPE, IMMUTABLETYPE = 1 << 9, 1 << 8               # flags (the second from 3.10, unused before)
GETSET = type(type.__dict__["__dict__"])               # C-level attribute
MEMBER = type(type.__dict__["__weakrefoffset__"])      # __slots__ entry
WRAPPER = type(object.__init__)                        # a dunder implemented in C
MISSING = object()                                     # what lookup() finds when nothing is there
MODULE = type(sys)
# A module's globals, read through ModuleType's own slot: vars(m) asks m's class, and a lazily
# loaded module's class (importlib.util._LazyModule) runs the module's code on that first access.
module_dict = MODULE.__dict__["__dict__"].__get__


def is_module(o):
    """Whether o is a module, asked of its real type (isinstance asks a proxy its __class__)."""
    return issubclass(type(o), MODULE)


def is_class(o):
    """Whether o is a class, asked of its real type (isinstance asks a proxy its __class__)."""
    return issubclass(type(o), type)

def _function():
    pass


# Functions of any kind: Python, builtin, bound method, method-wrapper.
FUNCTIONS = (type(_function), type(len), type(_function.__get__(0)), type(object().__str__))


class Unreadable(Exception):
    """An attribute that does not exist or cannot be read without running the target's code;
    str() says which and why."""


def lookup(t, name):
    """`name` as found on type t or its bases, without running any descriptor (MISSING if none)."""
    for k in type_mro(t):
        d = type_dict(k)
        if name in d:
            return d[name]
    return MISSING


def owner(t, name):
    """The class of t's MRO whose dictionary holds `name` (what lookup() reads), or None."""
    for k in type_mro(t):
        if name in type_dict(k):
            return k
    return None


def can_change(t):
    """Whether t's dictionaries can change (a class defined in Python): what lookup() found may be
    replaced later, e.g. by a property. Built-in and immutable C types cannot be changed."""
    flags = type_flags(t)
    return bool(flags & HEAPTYPE) and not flags & IMMUTABLETYPE


def instance_dict(o, t):
    """The instance __dict__ of o (of type t), read through its type's C descriptor; else None."""
    d = lookup(t, "__dict__")
    if type(d) is GETSET or type(d) is MEMBER:
        d = d.__get__(o, t)
        if type(d) is dict:
            return d
    return None


def fields(o):
    """The instance __dict__ of o as stored ({} when it has none): its fields, no code run."""
    d = instance_dict(o, type(o))
    return {} if d is None else d


def builtin_base(t, by_id):
    """The first class of t's MRO that is a value of `by_id` (types keyed by their id), or None."""
    for k in type_mro(t):
        if id(k) in by_id:
            return k
    return None


def _is_enum_field(at, name):
    """Enum's `name` and `value`: a types.DynamicClassAttribute (enum.property) whose getter
    returns the member's _name_/_value_, read here from the instance dict without calling it."""
    if name not in ("name", "value"):
        return False
    for k in type_mro(at):
        if type_name(k) == "DynamicClassAttribute" and type_dict(k).get("__module__") == "types":
            return True
    return False


def static_attribute(o, t, name, strict=False, error=Unreadable):
    """o.name the way Python finds it, minus __getattr__/__getattribute__ and code-run descriptors
    (raises error(message) for those). Strict: no property getter and no C-level attribute of a
    non-builtin type either. Not strict, a property's getter runs (the one code of the target)."""
    attr, idict = lookup(t, name), instance_dict(o, t)
    own = idict is not None and name in idict
    if attr is MISSING:
        if own:
            return idict[name]
        raise error("%s object has no attribute '%s'" % (type_name(t), name))
    at = type(attr)
    if issubclass(at, property):                       # reading a property runs its getter
        fget = property_getter(attr)
        if fget is None:
            raise error("attribute '%s' of %s cannot be read" % (name, type_name(t)))
        if strict:
            raise error("strict mode: '%s' of %s is a property (its getter is the target's code)"
                        % (name, type_name(t)))
        return fget(o)
    if at is MEMBER:                                   # __slots__: a plain read
        return attr.__get__(o, t)
    if at is GETSET:                                   # C-level fields
        if strict:
            raise error("strict mode: '%s' of %s is computed by C code of its type" % (name, type_name(t)))
        return attr.__get__(o, t)
    get = lookup(at, "__get__")
    if get is MISSING:                                 # a plain value on the class
        return idict[name] if own else attr
    if own and lookup(at, "__set__") is MISSING and lookup(at, "__delete__") is MISSING:
        return idict[name]
    if type(get) is WRAPPER and not strict:            # C descriptors: namedtuple fields, functions...
        return get(attr, o, t)
    if type_name(at) == "_tuplegetter" and type_dict(at).get("__module__") == "collections":
        return get(attr, o, t)                         # a namedtuple field: tuple item, no code
    if idict is not None and _is_enum_field(at, name):
        value = idict.get("_%s_" % name, MISSING)
        if value is not MISSING:
            return value
    if own:                                            # e.g. an ORM attribute already loaded
        return idict[name]
    raise error("attribute '%s' of %s is computed by the target's code" % (name, type_name(t)))


def read_attribute(o, name, error=Unreadable):
    """obj.name for tools that show objects (inspect): the value as a condition would read it
    (no __getattr__, no descriptor that runs code other than a property's getter), but code
    objects (functions, classes) are returned too. Classes are looked up in their own MRO.
    Raises error(message) saying why it cannot be read."""
    if is_class(o):
        value = lookup(o, name)
        if value is MISSING:
            raise error("class %s has no attribute '%s'" % (type_name(o), name))
        return value
    return static_attribute(o, type(o), name, False, error)


def _function_name(obj):
    """(module, qualified name) of a function of any kind, from the C fields of its own type: the
    generic attributes would ask a bound method's callable, or a builtin method's class (through
    its metaclass), for theirs."""
    for _ in range(8):
        if type(obj) is not FUNCTIONS[2]:
            break
        obj = obj.__func__                             # a bound method: what it calls
    t = type(obj)
    if t is FUNCTIONS[0]:
        return obj.__module__, obj.__qualname__
    if t is not FUNCTIONS[1] and t is not FUNCTIONS[3]:
        return None, qualified_name(obj)               # a callable object: its class
    if t is FUNCTIONS[3]:                              # a slot wrapper bound: the class defining it
        return None, "%s.%s" % (type_name(obj.__objclass__), obj.__name__)
    owner, name = obj.__self__, obj.__name__
    if owner is None or is_module(owner):              # a builtin function
        return obj.__module__, name
    return None, "%s.%s" % (type_name(owner if is_class(owner) else type(owner)), name)


def qualified_name(obj):
    """'module.QualName' of a class or function ('QualName' for builtins); of its class otherwise."""
    try:
        t = type(obj)
        if issubclass(t, FUNCTIONS):
            module, name = _function_name(obj)
        else:
            t = obj if issubclass(t, type) else t
            module, name = type_module(t), type_name(t)
        name = name if type(name) is str else "?"
        return name if type(module) is not str or module == "builtins" else module + "." + name
    except Exception:
        return "?"


def stored_attributes(o, t, limit, public):
    """Up to `limit` (name, value) of the instance __dict__ and __slots__ of o (of type t), with
    `public` only names not starting with _; None when it has neither, or when it shows nothing
    public but has a __repr__ of its own, which says more (e.g. enums)."""
    found, has = [], False
    for k in type_mro(t):
        d = type_dict(k)
        desc = d.get("__dict__")
        if not has and (type(desc) is GETSET or type(desc) is MEMBER):
            inst = desc.__get__(o, t)
            if issubclass(type(inst), dict):
                has = True
                found.extend(first_items(dict.items(inst), limit, public=public))
        slots = d.get("__slots__")
        if slots is not None:
            has = True
            slots = (slots,) if type(slots) is str else slots if type(slots) in (tuple, list, dict) else ()
            for name in slots:
                member = d.get(name) if type(name) is str and not (public and name.startswith("_")) else None
                if type(member) is MEMBER and len(found) < limit:
                    try:
                        found.append((name, member.__get__(o, t)))
                    except AttributeError:
                        pass        # slot never set
    if has and not found and any(k is not object and "__repr__" in type_dict(k) for k in type_mro(t)):
        return None
    return found[:limit] if has else None


def first_items(items, n, public=False):
    """The first n items of a builtin iterator (with `public`: (name, value) pairs, no _names)."""
    out = []
    for item in items:
        if len(out) >= n:
            break
        if not public or (type(item[0]) is str and not item[0].startswith("_")):
            out.append(item)
    return out
