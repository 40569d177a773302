# Agent library `condition`: compiles a --condition expression once, then evaluates it for
# every observed call, on the target's own threads.
#
# The expression is parsed, checked against a whitelist of syntax and rewritten so that every
# attribute read, subscript, call and operation that could walk or build a large value goes
# through a guard below; it then runs as a lambda without builtins. A condition only reads: it
# never changes an object. What one evaluation may cost is bounded by construction: a
# condition has no loops, so each guard runs at most once, and the guards share a budget of
# BUDGET element steps (each gets BUDGET // the number of guards, fixed at compile time) that
# bounds both the values they build and the elements they walk. In the default mode the
# target's own code runs only where docs/architecture.md lists (property getters, and the
# dunders a comparison, str() or truth test dispatches to on the target's objects); in strict
# mode it never runs: every value an operation touches must be of an exact builtin type.
# Types are compared by identity or issubclass, never hashed, so that an odd metaclass runs
# no code here.
import sys

REQUIRES = ("errors", "reflect")


class ConditionError(Exception):
    """The condition is refused before any call is observed; str() is a one-line reason."""


class ConditionEvalError(Exception):
    """Evaluating the condition for one call failed; the caller counts these."""


MAX_SOURCE = 1000      # characters
MAX_DEPTH = 40         # nesting of brackets and of the syntax tree
MAX_NODES = 300        # parts of the expression
BUDGET = 20000         # element steps (items built or walked, characters of text) per evaluation
MAX_ITEMS = BUDGET     # (older name)
MAX_EXPONENT = 1000    # int ** int: exponent at most this,
MAX_POW_BITS = 4000    # and a result of at most about this many bits
MAX_SHIFT = 10000      # a << b
MAX_INT_BITS = 100000  # an int operand of *, //, %, ==... (their cost grows faster than its size)
MAX_DIGITS = 4300      # int <-> str (3.8-3.10 have no limit of their own)
_INT_BITS = 14284      # about MAX_DIGITS decimal digits
MAX_TEXT_DEPTH = 50    # nesting str()/repr() of containers follows
MAX_ATTRIBUTES = 1000  # strict mode: an instance __dict__ read has at most this many keys
COSTLY_STOP = 3        # evaluations cut off by the budget before a watch stops (Condition.too_costly)
NAMES = ("params", "args", "kwargs", "target", "cost", "result", "exception")

FUNCTIONS = ("len", "str", "int", "float", "bool", "abs", "min", "max", "round", "repr_short", "type_name")
BLOCKED = frozenset(("eval", "exec", "open", "compile", "getattr", "setattr", "delattr", "globals", "locals",
                     "vars", "__import__", "type", "object", "super", "help", "input", "breakpoint"))
MUTATORS = frozenset(("append", "extend", "insert", "remove", "pop", "popitem", "clear", "sort", "reverse",
                      "update", "setdefault", "add", "discard", "difference_update", "intersection_update",
                      "symmetric_difference_update", "appendleft", "extendleft", "popleft", "rotate",
                      "move_to_end", "write", "writelines", "truncate", "send", "throw", "close"))
KEYWORDS = {"round": ("ndigits",), "split": ("maxsplit",)}
_STR_METHODS = ("startswith", "endswith", "lower", "upper", "strip", "lstrip", "rstrip", "split", "count",
                "find", "isdigit", "isalpha", "isspace", "replace")
_BUILDING = frozenset(("lower", "upper", "strip", "lstrip", "rstrip", "split", "replace"))  # a new value
# str(bytes, encoding[, errors]): only codecs CPython decodes in C without a lookup (no import,
# no search function of the target's) and error handlers that are not looked up either.
_ENCODINGS = frozenset(("utf-8", "utf8", "ascii", "latin-1", "latin1"))
_ERRORS = frozenset(("strict", "replace", "ignore"))

_MISSING = object()


def _refuse(message):
    raise ConditionEvalError(message)


class BudgetError(ConditionEvalError):
    """The condition would build or walk more than its share of BUDGET (or MAX_* bounds):
    cut off. Callers stop a watch whose condition keeps being cut off (Condition.costly)."""


def _over(message):
    raise BudgetError(message)


def _cell():
    v = 0
    return (lambda: v).__closure__[0]


def _internal_types():
    """Frames, code, tracebacks, generators, coroutines, cells: the interpreter's own objects,
    through which a condition could reach module globals and builtins."""
    def gen():
        yield

    async def coro():
        pass

    async def agen():
        yield
    c = coro()
    c.close()                                         # never awaited: no warning
    try:
        raise ValueError()
    except ValueError as e:
        tb = e.__traceback__
    return (type(sys._getframe()), type(_refuse.__code__), type(tb), type(gen()), type(c), type(agen()),
            type(_cell()), type(sys))


_FUNCTION = type(_refuse)
_WRAPPER = type(object.__init__)                      # a dunder implemented in C
_METHOD_DESC = type(str.join)
_GETSET = type(type.__dict__["__dict__"])             # C-level attribute
_MEMBER = type(type.__dict__["__weakrefoffset__"])    # __slots__ entry
_INTERNAL = _internal_types()
_INTERNAL_IDS = frozenset(id(t) for t in _INTERNAL)
_MODULE = type(sys)
# An attribute holding one of these is the target's code, which a condition never gets hold of.
_CODE = (type, _FUNCTION, type(_refuse.__get__(0)), type(len), classmethod, staticmethod, property,
         _WRAPPER, _METHOD_DESC, type(object().__str__), type(dict.__dict__["fromkeys"]), _GETSET,
         _MEMBER) + _INTERNAL
_CODE_IDS = frozenset(id(t) for t in _CODE)          # by id: a metaclass's __hash__ is never run
_SUBCLASSABLE_CODE = (type, classmethod, staticmethod, property)
_NONE = type(None)
# Strict mode: the only types an operation may touch (exact types: a subclass may override a dunder).
_STRICT_SCALARS = (_NONE, bool, int, float, complex, str, bytes)
_STRICT_CONTAINERS = (tuple, list, dict, set, frozenset)
_KEY_IDS = frozenset((id(str), id(int)))


def _strict_instance_dict(o, t):
    """Strict mode: an attribute read searches the instance dict, whose keys must be builtins."""
    idict = reflect.instance_dict(o, t)
    if idict is not None:
        _string_keys(idict, MAX_ATTRIBUTES)


def _string_keys(d, limit):
    """Strict mode: a lookup in a dict could run the __eq__ of a key whose hash matches, so
    every key must be of a builtin type (str and int keys checked at C speed)."""
    if dict.__len__(d) > limit:
        _over("strict mode: a dict with more than %d keys cannot be searched" % limit)
    if frozenset(map(id, map(type, dict.keys(d)))) <= _KEY_IDS:
        return
    for k in dict.keys(d):
        if id(type(k)) not in _KEY_IDS:
            _strict_value(k, limit)


def _replace(base):
    def replace(s, old, new, count=-1):
        if issubclass(type(old), _TEXTS) and issubclass(type(new), _TEXTS):
            grow = _builtin_len(new) - _builtin_len(old)
            n = base.count(s, old)
            if grow > 0 and (n if count < 0 else min(n, count)) * grow > MAX_ITEMS:
                _over("replace() would add more than %d characters" % MAX_ITEMS)
        return base.replace(s, old, new, count)
    return replace


# Builtin types, by id: the methods a condition may call and the data attributes it may read.
_BUILTINS, _METHODS, _PROPS = {}, {}, {}
for _t, _names, _props in ((str, _STR_METHODS, ()), (bytes, _STR_METHODS, ()), (bytearray, _STR_METHODS, ()),
                           (dict, ("get", "keys", "values", "items"), ()), (list, ("count", "index"), ()),
                           (tuple, ("count", "index"), ()), (int, ("is_integer",), ("real", "imag")),
                           (bool, ("is_integer",), ("real", "imag")), (float, ("is_integer",), ("real", "imag")),
                           (complex, (), ("real", "imag")), (set, (), ()), (frozenset, (), ()), (range, (), ()),
                           (_NONE, (), ())):
    _BUILTINS[id(_t)] = _t
    _METHODS[id(_t)] = dict((n, _replace(_t) if n == "replace" else getattr(_t, n)) for n in _names if hasattr(_t, n))
    _PROPS[id(_t)] = dict((n, getattr(_t, n).__get__) for n in _props)  # builtins: no code runs
del _t, _names, _props
_STR_SCANS = dict((n, m) for n, m in _METHODS[id(str)].items() if n not in _BUILDING)
_METHOD_NAMES = frozenset(n for table in _METHODS.values() for n in table)
_TEXTS = (str, bytes, bytearray)
_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))
_CONTAINERS = (dict, list, tuple, set, frozenset)
_SEQUENCES = (list, tuple, set, frozenset)
_VIEW_IDS = frozenset(id(t) for t in _VIEWS)         # by id: `t in (...)` would run a metaclass's __eq__
_STRICT_IDS = frozenset(id(t) for t in _STRICT_SCALARS + _STRICT_CONTAINERS + (range, bytearray) + _VIEWS)


def _builtin_len(x):
    """len(x) through the builtin type x derives from (a subclass's __len__ is the target's code)."""
    return reflect.builtin_base(type(x), _BUILTINS).__len__(x)


def _is_namespace(d):
    """A module's __dict__ or another globals namespace (it holds __builtins__)."""
    if dict.__contains__(d, "__builtins__"):
        return True
    name = dict.get(d, "__name__")
    module = sys.modules.get(name) if type(name) is str else None
    return module is not None and reflect.instance_dict(module, type(module)) is d


def _reachable(value, what):
    """A value an attribute, subscript or get() gives: never the interpreter's internals."""
    t = type(value)
    if t is int or t is str or t is float or t is bool or t is _NONE or t is tuple or t is list:
        return value
    if id(t) in _CODE_IDS or issubclass(t, _SUBCLASSABLE_CODE):
        _refuse("%s is a %s: a condition never uses the target's code" % (what, reflect.type_name(t)))
    if issubclass(t, dict) and _is_namespace(value):
        _refuse("%s is a module's namespace: a condition reads only the call's data" % what)
    return value


# ---- sizes: what an operation walking or building a value costs --------------------------------
def _steps(x, cap, strict, shift=6):
    """An upper bound of the element steps a builtin operation walking x takes (==, <, in,
    hash, min, max compare or hash every element, nested ones too; text is compared 64
    characters a step), counted until it passes cap. Shared parts count every time they are
    reached, as the operations walk them. Strict: every value reached must be of an exact
    builtin type (else ConditionEvalError). Runs none of the target's code."""
    t = type(x)
    if t is int or t is float or t is bool or t is _NONE:
        return 1
    if t is str:
        return 1 + (len(x) >> shift)
    stack, steps, seen = [x], 0, {}
    while stack:
        v = stack.pop()
        t = type(v)
        steps += 1
        if t is float or t is _NONE or t is bool:     # the commonest first
            continue
        if t is int:                                   # compared at C speed, whatever its size
            continue
        base = t if id(t) in _BUILTINS else reflect.builtin_base(t, _BUILTINS)
        if strict and base is not t and id(t) not in _VIEW_IDS:
            _not_builtin(t)
        if base is str or base is bytes or base is bytearray:
            steps += base.__len__(v) >> shift
        elif base in _SEQUENCES or base is dict or id(t) in _VIEW_IDS:
            n = len(v) if base is None else base.__len__(v)    # a view's length is its dict's
            if steps + n > cap:
                return cap + 1
            if n <= 8:                                 # small: its elements are walked here
                stack.extend(_items(v, t, base))
                continue
            known = seen.get(id(v))                    # a shared part is measured once
            if known is None:
                known = seen[id(v)] = _scalar_steps(_items(v, t, base), stack, shift)
            steps += known
        if steps > cap:
            return cap + 1
    return steps


def _items(v, t, base):
    """The elements of a container as a list or tuple (a dict's keys then values), taken by the
    builtin type's own iteration (never a subclass's __iter__)."""
    if t is list or t is tuple:
        return v
    if base is dict:
        return list(dict.keys(v)) + list(dict.values(v))
    return list(v) if base is None else list(base.__iter__(v))


def _scalar_steps(items, stack, shift):
    """Steps of the plain scalars among items (None, bool, int, float, complex, str, bytes),
    counted at C speed; every other element is pushed onto stack to be walked."""
    n = len(items)
    present = frozenset(map(id, map(type, items)))     # ids are ints: no type is hashed
    if present <= _SCALAR_IDS:
        if present.isdisjoint(_TEXT_IDS):
            return n
        if len(present) == 1:                          # only texts
            return n + (sum(map(len, items)) >> shift)
    kinds = list(map(id, map(type, items)))
    if not present <= _SCALAR_IDS:
        plain = list(map(_SCALAR_IDS.__contains__, kinds))
        stack.extend([e for e, p in zip(items, plain) if not p])
    if present.isdisjoint(_TEXT_IDS):
        return n
    return n + (sum([len(e) for e, k in zip(items, kinds) if k in _TEXT_IDS]) >> shift)


_ID_STR, _ID_INT, _ID_BOOL = id(str), id(int), id(bool)
_SCALAR_IDS = frozenset(map(id, (int, float, bool, _NONE, complex, str, bytes)))
_TEXT_IDS = frozenset(map(id, (str, bytes)))
_INT_IDS = frozenset(map(id, (int, bool)))
_FLAT_IDS = frozenset(map(id, (int, float, bool, _NONE, str)))
_NUMBER_IDS = frozenset(map(id, (int, float, bool, _NONE)))


def _flat_kinds(items):
    """The ids of the element types of items when they are all None, bool, float, int or str
    (exact types), else None: found at C speed (ids are ints, so no type is hashed)."""
    kinds = frozenset(map(id, map(type, items)))
    return kinds if kinds <= _FLAT_IDS else None


def _not_builtin(t):
    _refuse("strict mode: %s is not a builtin type (its methods would be the target's code)" % reflect.type_name(t))


def _strict_value(x, cap):
    """Strict: x and everything in it are of exact builtin types, within cap steps."""
    if _steps(x, cap, True) > cap:
        _over("value too large for a condition (more than %d element steps)" % cap)
    return x


def _g_val(x, cap):
    """An operand whose whole value an operation walks: at most cap steps. Returns x."""
    t = type(x)
    if t is int or t is float or t is bool or t is _NONE:
        return x
    if _steps(x, cap, False) > cap:
        _over("value too large for a condition (more than %d element steps)" % cap)
    return x


def _s_val(x, cap):
    t = type(x)
    if t is int or t is float or t is bool or t is _NONE:
        return x
    return _strict_value(x, cap)


def _s_top(x):
    """Strict: x itself is of an exact builtin type (a truth test, a unary operator, an
    operation with a literal, which touch no element)."""
    t = type(x)
    if id(t) in _STRICT_IDS:
        return x
    _not_builtin(t)


def _g_part(x, cap):
    """An operand of +, -, |, &, ^, // or / with no number written on either side: what it
    could build (a text or a container joined with another) is at most cap items long, an
    int at most MAX_INT_BITS bits. Returns x."""
    t = type(x)
    if t is float or t is bool or t is _NONE or (t is int and int.bit_length(x) <= MAX_INT_BITS):
        return x
    if issubclass(t, int) and int.bit_length(x) > MAX_INT_BITS:
        _over("an int operand of more than %d bits in a condition" % MAX_INT_BITS)
    if _length(x) > cap:
        _over("operand too large for a condition (more than %d items or characters)" % cap)
    return x


def _s_part(x, cap):
    t = type(x)
    if t is set or t is frozenset or t is dict:        # joined by hashing and comparing elements
        _strict_value(x, cap)
    return _g_part(_s_top(x), cap)


_COMPARE = (lambda a, b: a == b, lambda a, b: a != b, lambda a, b: a < b, lambda a, b: a <= b,
            lambda a, b: a > b, lambda a, b: a >= b)


def _g_cmp(a, b, cap, op):
    """a <op> b when one side is within cap steps (a comparison stops at the smaller side)."""
    if _steps(a, cap, False) > cap and _steps(b, cap, False) > cap:
        _over("comparison of two values larger than a condition may walk (%d element steps)" % cap)
    return _COMPARE[op](a, b)


def _length(x):
    """len() of a text or container of a builtin type (its own C len, never a subclass's), else 0."""
    base = reflect.builtin_base(type(x), _BUILTINS)
    if base is None or base is int or base is float or base is bool or base is complex or base is _NONE:
        return 0
    return base.__len__(x)


# ---- text: str() and repr() bounded as they are made ---------------------------------------------
def _text(x, cap, as_repr, strict):
    """str(x) (or repr(x)) of at most cap characters, else ConditionEvalError. Builtin
    containers are written here, element by element, so a large or deeply shared value is cut
    off as soon as it passes cap; anything else is converted by its own type (the target's
    code, not in strict mode) and its length checked."""
    t = type(x)
    if t is str:
        if not as_repr:
            return x
        if len(x) > cap:
            _too_long("repr() of a string longer than %d characters in a condition" % cap)
        return _capped(repr(x), cap)
    if t is int or t is bool:
        if int.bit_length(x) > _INT_BITS:
            _over("an int with more than %d digits cannot be made text in a condition" % MAX_DIGITS)
        return _capped(repr(x), cap)
    if t is float or t is _NONE or t is complex:
        return repr(x)
    parts = []
    _write(x, [cap, cap], parts, 0, strict, as_repr)
    return "".join(parts)


def _capped(s, cap):
    if len(s) > cap:
        _too_long("text longer than %d characters in a condition" % cap)
    return s


def _write(x, left, parts, depth, strict, as_repr=True):
    """Appends repr(x) (str(x) at the top when not as_repr) to parts; left[0] is the characters
    still allowed."""
    t = type(x)
    base = t if id(t) in _BUILTINS else reflect.builtin_base(t, _BUILTINS)
    lookup = reflect.lookup
    own_repr = base is t or base is not None and lookup(t, "__repr__") is lookup(base, "__repr__") and (
        as_repr or lookup(t, "__str__") is lookup(base, "__str__"))
    if own_repr and base in _CONTAINERS:
        if depth > MAX_TEXT_DEPTH:
            _over("str() of values nested more than %d deep in a condition" % MAX_TEXT_DEPTH)
        if strict and base is not t:
            _not_builtin(t)
        return _write_container(x, t, base, left, parts, depth, strict)
    if strict and id(t) not in _STRICT_IDS:
        _not_builtin(t)
    if base in _CONTAINERS or issubclass(t, _VIEWS):   # a type's own repr walks the elements
        if _steps(x, left[0], strict, 0) > left[0]:
            _too_long("str() of a %s: longer than the %d characters a condition may make"
                      % (reflect.type_name(t), left[1]))
    if base is str or base is bytes or base is bytearray:
        if base.__len__(x) * (1 if base is str else 4) > left[0]:   # a byte may become \xNN
            _too_long("text longer than the %d characters a condition may make" % left[1])
    elif base is int and int.bit_length(x) > _INT_BITS:
        _over("an int with more than %d digits cannot be made text in a condition" % MAX_DIGITS)
    text = repr(x) if as_repr else str(x)
    if type(text) is not str:
        _refuse("str() of %s did not give a str" % reflect.type_name(t))
    left[0] -= len(text)
    if left[0] < 0:
        _too_long("text longer than the %d characters a condition may make" % left[1])
    parts.append(text)


_OPEN = {id(list): ("[", "]"), id(tuple): ("(", ")"), id(dict): ("{", "}"), id(set): ("{", "}"),
         id(frozenset): ("frozenset({", "})")}


def _flat_text_bound(base, x, n):
    """At most how long repr(x) is when x holds only plain scalars (found at C speed), else -1."""
    kinds = _flat_kinds(base.__iter__(x))
    if kinds is None:
        return -1
    if _ID_STR in kinds:
        if len(kinds) > 1:
            return -1
        printable = all(map(str.isprintable, base.__iter__(x)))
        return sum(map(len, base.__iter__(x))) * (2 if printable else 10) + 4 * n + 16 + len(reflect.type_name(base))
    if _ID_INT in kinds:
        if not kinds <= frozenset((_ID_INT, _ID_BOOL)):
            return -1                                  # ints mixed with floats: sizes unknown here
        bits = max(map(int.bit_length, base.__iter__(x)))
        if bits > _INT_BITS:
            return -1
        width = max(7, bits * 31 // 100 + 4) if _ID_BOOL in kinds else bits * 31 // 100 + 4
    else:
        width = 26                                     # a float's repr has at most 24 characters
    return width * n + 16 + len(reflect.type_name(base))


_ITEM_COST = 8   # of the text budget, per element written here (bounds this loop's time)


def _write_container(x, t, base, left, parts, depth, strict):
    n = base.__len__(x)
    if left[0] < _ITEM_COST * n + 2:                   # ", " between items at the least
        _too_long("str() of a %s with %d items: longer than the %d characters a condition may make"
                  % (reflect.type_name(t), n, left[1]))
    if n > 8 and base is not dict and 0 <= _flat_text_bound(base, x, n) <= left[0]:
        return _append(parts, left, base.__repr__(x))  # plain scalars: the builtin, at C speed
    if base is set or base is frozenset:
        if n == 0:
            return _append(parts, left, "%s()" % reflect.type_name(t))
        opening, closing = ("%s({" % reflect.type_name(t), "})") if t is not set else _OPEN[id(set)]
    else:
        opening, closing = _OPEN[id(base)]
    _append(parts, left, opening)
    items = dict.items(x) if base is dict else base.__iter__(x)
    for i, item in enumerate(items):
        left[0] -= _ITEM_COST - 2                      # the work per item, beyond its ", "
        if i:
            _append(parts, left, ", ")
        if base is dict:
            _write(item[0], left, parts, depth + 1, strict)
            _append(parts, left, ": ")
            item = item[1]
        _write(item, left, parts, depth + 1, strict)
    if base is tuple and n == 1:
        _append(parts, left, ",")
    _append(parts, left, closing)


def _append(parts, left, text):
    left[0] -= len(text)
    if left[0] < 0:
        _too_long("text longer than a condition may make")
    parts.append(text)


class _TooLong(BudgetError):
    """Text past its budget; repr_short() cuts instead."""


def _too_long(message):
    raise _TooLong(message)


# ---- guards the rewritten expression calls ------------------------------------------------------
# Each guard that walks or builds a value gets `cap`, its share of BUDGET. _guards(strict) makes
# the two sets: the default one, and the strict one that refuses any value of a non-builtin type.
# They are made on first use (_scope): `reflect` is bound only once this library is loaded, and
# its functions are held in the closure so that an attribute read does not look them up again.
def _guards(strict):
    val = _s_val if strict else _g_val
    top = _s_top if strict else (lambda x: x)
    builtin_base, static_attribute = reflect.builtin_base, reflect.static_attribute

    def g_attr(o, name):
        t = type(o)
        base = t if id(t) in _PROPS else builtin_base(t, _BUILTINS)
        if base is not None:
            if name in _PROPS[id(base)]:
                return _PROPS[id(base)][name](o)
            if name in _METHODS[id(base)]:
                _refuse("'%s' is a method of %s: call it" % (name, reflect.type_name(base)))
            if base is t:
                _refuse("%s has no attribute '%s' that a condition may read" % (reflect.type_name(t), name))
        if id(t) in _INTERNAL_IDS or issubclass(t, _MODULE):
            _refuse("attributes of a %s are not readable in a condition" % reflect.type_name(t))
        if strict:
            _strict_instance_dict(o, t)
        return _reachable(static_attribute(o, t, name, strict, ConditionEvalError), name)

    def g_call(o, name, cap, *args, **kwargs):
        t = type(o)
        if t is str and not strict and name in _STR_SCANS and (len(o) >> 4) <= cap:
            return _STR_SCANS[name](o, *args, **kwargs)   # the commonest: startswith() & co.
        base = t if id(t) in _BUILTINS else builtin_base(t, _BUILTINS)
        method = _METHODS[id(base)].get(name) if base is not None else None
        if method is None:
            _refuse("%s.%s() cannot be called in a condition" % (reflect.type_name(t), name))
        if strict:
            for a in args + tuple(kwargs.values()):
                _strict_value(a, cap)
        if base is str or base is bytes or base is bytearray:
            n = base.__len__(o)
            if name in _BUILDING:                       # a new text, or a list of texts
                if n > cap:
                    _over("%s() of a text longer than %d characters in a condition" % (name, cap))
                if name == "replace":
                    return _replace_within(base, o, cap, *args, **kwargs)
            elif (n >> 4) > cap:                        # scans: 16 characters a step
                _over("%s() of a text longer than %d characters in a condition" % (name, cap << 4))
        elif base is dict:                              # get(): the key is hashed and compared
            if args:
                val(args[0], cap)
            if strict:
                _string_keys(o, cap)
            return _reachable(method(o, *args, **kwargs), name + "()")
        elif base is list or base is tuple:             # count(), index(): every element compared
            if strict:
                _strict_value(o, cap)
            elif args and base.__len__(o) * _steps(args[0], cap, False) > cap and _steps(o, cap, False) > cap:
                _over("%s() over too many elements for a condition (more than %d steps)" % (name, cap))
        return method(o, *args, **kwargs)               # the builtin's own method, even on subclasses

    def g_sub(o, key, cap):
        t = type(o)
        if (t is tuple or t is list) and type(key) is int:
            value = o[key]
            tv = type(value)
            if tv is int or tv is str or tv is float or tv is bool or tv is _NONE:
                return value
            return _reachable(value, "an item")
        base = t if id(t) in _BUILTINS else builtin_base(t, _BUILTINS)
        if base is dict:                                # not d[key]: a subclass's __missing__ may insert
            val(key, cap)
            if strict:
                _string_keys(o, cap)
            value = dict.get(o, key, _MISSING)
            if value is _MISSING:
                raise KeyError(key)
            return _reachable(value, "an item")
        if base is None or not issubclass(base, _TEXTS + (list, tuple, range)):
            _refuse("%s object cannot be subscripted in a condition" % reflect.type_name(t))
        kt = type(key)
        if kt is slice:
            if len(range(*slice.indices(key, base.__len__(o)))) > cap:
                _over("slice of more than %d items in a condition" % cap)
        elif strict and kt is not int and kt is not bool:
            _not_builtin(kt)
        return _reachable(base.__getitem__(o, key), "an item")

    def g_slice(lower, upper, step):
        if strict:
            for b in (lower, upper, step):
                if b is not None and type(b) is not int and type(b) is not bool:
                    _not_builtin(type(b))
        return slice(lower, upper, step)

    def g_in(item, box, cap):
        t = type(box)
        if strict:                                      # a subclass's own __contains__ would run
            _s_top(box)
        base = t if id(t) in _BUILTINS else builtin_base(t, _BUILTINS)
        if base is str or base is bytes or base is bytearray:
            if (base.__len__(box) >> 4) > cap:
                _over("'in' over a text longer than %d characters in a condition" % (cap << 4))
            val(item, cap)
        elif base is dict or base is set or base is frozenset or t is _VIEWS[0] or t is _VIEWS[2]:
            val(item, cap)                              # hashed, then compared to a few keys
            if strict:
                _strict_value(box, cap) if base is not dict else _string_keys(box, cap)
        elif base is list or base is tuple or t is _VIEWS[1]:
            if strict:
                _strict_value(item, cap)
                _strict_value(box, cap)
            elif len(box) * _steps(item, cap, False) > cap and _steps(box, cap, False) > cap:
                _over("'in' over too many elements for a condition (more than %d steps)" % cap)
        elif base is range:
            if type(item) is not int and type(item) is not bool and len(box) > cap:
                _over("'in' would iterate a range of more than %d items" % cap)
        elif strict or reflect.lookup(t, "__contains__") is reflect.MISSING:
            if strict:
                _not_builtin(t)
            _refuse("'in' would iterate %s; give it a str, list, tuple, set or dict" % reflect.type_name(t))
        return item in box

    def g_pow(a, b, cap):
        top(a), top(b)
        if issubclass(type(b), int):
            if b > MAX_EXPONENT:
                _over("exponent too large in a condition (at most %d)" % MAX_EXPONENT)
            if issubclass(type(a), int) and b > 0 and int.bit_length(a) * b > MAX_POW_BITS:
                _over("power too large in a condition (at most about %d bits)" % MAX_POW_BITS)
        return a ** b

    def g_mul(a, b, cap):
        ta, tb = type(a), type(b)
        if (ta is int or ta is float) and (tb is int or tb is float):
            if ta is int and tb is int and int.bit_length(a) + int.bit_length(b) > MAX_INT_BITS:
                _over("product too large in a condition (at most %d bits)" % MAX_INT_BITS)
            return a * b
        top(a), top(b)
        seq, n = (a, b) if issubclass(ta, _TEXTS + (list, tuple)) else (b, a)
        if issubclass(type(seq), _TEXTS + (list, tuple)) and issubclass(type(n), int):
            if n > 1 and _builtin_len(seq) * n > cap:
                _over("repetition too large in a condition (at most %d items)" % cap)
        elif issubclass(ta, int) and issubclass(tb, int) and int.bit_length(a) + int.bit_length(b) > MAX_INT_BITS:
            _over("product too large in a condition (at most %d bits)" % MAX_INT_BITS)
        return a * b

    def g_lshift(a, b, cap):
        top(a), top(b)
        if issubclass(type(b), int) and b > MAX_SHIFT:
            _over("shift too large in a condition (at most %d)" % MAX_SHIFT)
        return a << b

    def g_mod(a, b, cap):
        if issubclass(type(a), _TEXTS):
            _refuse("%-formatting is not allowed in a condition; use an f-string")
        top(a), top(b)
        if issubclass(type(a), int) and issubclass(type(b), int) and \
                int.bit_length(a) + int.bit_length(b) > MAX_INT_BITS:
            _over("operands too large in a condition (at most %d bits)" % MAX_INT_BITS)
        return a % b

    def f_str(cap, x="", *rest):
        if rest:
            return _decode(cap, x, *rest)
        return _text(x, cap, False, strict)

    def f_repr_short(cap, x):
        if type(x) is str:
            return _cut(repr(x[:200]), 200)
        try:
            return _cut(_text(x, max(cap, 200), True, strict), 200)
        except _TooLong:
            t = type(x)
            if issubclass(t, int) and not issubclass(t, bool):
                return "<int with more than %d digits>" % MAX_DIGITS
            if issubclass(t, _CONTAINERS):
                return "<%s with %d items>" % (reflect.type_name(t), _length(x))
            return "<%s too long to show>" % reflect.type_name(t)

    def f_int(x=0, *rest):
        top(x), [top(r) for r in rest]
        if issubclass(type(x), _TEXTS) and _builtin_len(x) > MAX_DIGITS:
            _over("int() of a string longer than %d characters is not allowed" % MAX_DIGITS)
        return int(x, *rest)

    def f_float(cap, x=0.0):
        top(x)
        if _length(x) > cap:
            _over("float() of a string longer than %d characters is not allowed" % cap)
        return float(x)

    def f_len(x):
        t = type(x)
        if not (t is tuple or t is list or t is dict or t is str):
            impl = reflect.lookup(t, "__len__")
            if impl is not reflect.MISSING and type(impl) is not _WRAPPER and type(impl) is not _METHOD_DESC:
                _refuse("len() of %s would run its own __len__" % reflect.type_name(t))
        return len(x)

    def minmax(fn):
        def guarded(cap, *args):
            if len(args) != 1:
                for a in args:
                    val(a, cap)
                return fn(*args)
            x, t = args[0], type(args[0])
            base = builtin_base(t, _BUILTINS)     # never iterate a user iterable (or generator)
            if base is None or not issubclass(base, _CONTAINERS + _TEXTS):
                _refuse("%s() of %s would iterate it; give it a str, list, tuple, set or dict"
                        % (fn.__name__, reflect.type_name(t)))
            val(x, cap) if base not in _TEXTS else _g_val(x, cap)
            return fn(x if base is t else dict.keys(x) if base is dict else base.__iter__(x))
        return guarded

    def f_round(x, ndigits=None):
        top(x), top(ndigits)
        if ndigits is None:
            return round(x)
        if not issubclass(type(ndigits), int) or not -1000 <= ndigits <= 1000:
            _refuse("round() needs ndigits to be an int between -1000 and 1000")
        return round(x, ndigits)

    return {"__builtins__": {}, "_g_attr": g_attr, "_g_call": g_call, "_g_sub": g_sub, "_g_slice": g_slice,
            "_g_in": g_in, "_g_pow": g_pow, "_g_mul": g_mul, "_g_lshift": g_lshift, "_g_mod": g_mod,
            "_g_val": val, "_g_top": top, "_g_cmp": _g_cmp, "_g_part": _s_part if strict else _g_part,
            "_f_len": f_len, "_f_str": f_str, "_f_int": f_int, "_f_float": f_float,
            "_f_bool": lambda x=False: bool(top(x)), "_f_abs": lambda x: abs(top(x)),
            "_f_min": minmax(min), "_f_max": minmax(max), "_f_round": f_round,
            "_f_repr_short": f_repr_short, "_f_type_name": lambda x: reflect.type_name(type(x))}


def _decode(cap, x, encoding="utf-8", errors="strict"):
    """str(bytes, encoding[, errors]) with a codec decoded in C without any lookup."""
    if type(x) is not bytes and type(x) is not bytearray:
        _refuse("str() with an encoding needs bytes in a condition")
    if type(encoding) is not str or encoding.lower() not in _ENCODINGS:
        _refuse("str() in a condition decodes only %s" % ", ".join(sorted(_ENCODINGS)))
    if type(errors) is not str or errors not in _ERRORS:
        _refuse("str() in a condition accepts only the errors %s" % ", ".join(sorted(_ERRORS)))
    if len(x) > cap:
        _over("str() of more than %d bytes in a condition" % cap)
    return str(x, encoding, errors)


def _replace_within(base, s, cap, old, new, count=-1):
    if issubclass(type(old), _TEXTS) and issubclass(type(new), _TEXTS):
        grow = _builtin_len(new) - _builtin_len(old)
        n = base.count(s, old)
        if grow > 0 and (n if count < 0 else min(n, count)) * grow > cap:
            _over("replace() would add more than %d characters" % cap)
    return base.replace(s, old, new, count)


def _cut(s, limit):
    return s if len(s) <= limit else s[:limit - 3] + "..."


_SCOPES = {}     # strict -> the guards' globals, made on first use


def _scope(strict):
    """The guards of the default or the strict mode (two threads may both make them: either does)."""
    scope = _SCOPES.get(strict)
    if scope is None:
        scope = _SCOPES[strict] = _guards(strict)
    return scope


_FOLD = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "FloorDiv": lambda a, b: a // b,
         "USub": lambda a: -a, "UAdd": lambda a: +a, "Invert": lambda a: ~a, "Not": lambda a: not a,
         "Tuple": lambda *v: v, "List": lambda *v: list(v)}
_SIZED_FUNCTIONS = frozenset(("str", "repr_short", "float", "min", "max"))   # given a share
_CMP = ("Eq", "NotEq", "Lt", "LtE", "Gt", "GtE")
_OP_GUARDS = {"Pow": "_g_pow", "Mult": "_g_mul", "LShift": "_g_lshift", "Mod": "_g_mod"}
_PLAIN = frozenset(("BoolOp", "Compare", "IfExp", "UnaryOp", "Tuple", "List", "Set", "Dict", "JoinedStr",
                    "Constant"))
_REFUSED = {"Lambda": "lambda is", "ListComp": "comprehensions are", "SetComp": "comprehensions are",
            "DictComp": "comprehensions are", "GeneratorExp": "generator expressions are",
            "NamedExpr": "assignments (:=) are", "Starred": "unpacking with * is", "Await": "await is",
            "Yield": "yield is", "YieldFrom": "yield is", "TemplateStr": "template strings are",
            "MatMult": "the @ operator is"}


# ---- compiling ---------------------------------------------------------------------------------
def _bracket_depth(src):
    """Deepest bracket nesting, strings included (f-strings hold expressions; parentheses leave no
    trace in the tree, and 3.8's parser prints to the target's stderr when they overflow it)."""
    depth = deepest = 0
    for c in src:
        depth += (c in "([{") - (c in ")]}")
        deepest = max(deepest, depth)
    return deepest


def _literal(node, numeric=False):
    """A constant written in the condition (a sign allowed), or a tuple or list of them: its
    size is bounded by the source. numeric: a number only."""
    kind = type(node).__name__
    if kind == "UnaryOp" and type(node.op).__name__ in ("USub", "UAdd"):
        node, kind = node.operand, type(node.operand).__name__
    if kind == "Constant":
        return isinstance(node.value, (int, float, complex)) if numeric else True
    if kind in ("Tuple", "List") and not numeric:
        return all(_literal(e) for e in node.elts)
    return False


class _Compiler(object):
    """Checks the tree against the whitelist and rewrites it to call the guards."""

    def __init__(self, A, positions=None, local_names=None, strict=False, share=BUDGET):
        self.A, self.nodes, self.names, self.positions = A, 0, set(), positions
        # With local_names the arguments are read from the frame's locals `l` (positional
        # parameters only); needs_tuple says the condition uses params/args as a whole.
        self.local_names, self.needs_tuple = local_names, False
        self.strict, self.share = strict, share
        self.scope = _scope(strict)
        self.consts = {}               # id(original node) -> value: constant bombs are refused now
        self.guards = 0                # guards given a share of the budget

    def visit(self, node, depth):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ConditionError("condition is too complex (more than %d parts)" % MAX_NODES)
        if depth > MAX_DEPTH:
            raise ConditionError("condition is nested too deeply (at most %d levels)" % MAX_DEPTH)
        kind = type(node).__name__
        special = getattr(self, "v_" + kind, None)
        if special is not None:
            return special(node, depth + 1)
        if kind not in _PLAIN:
            raise ConditionError("%s not allowed in a condition" % _REFUSED.get(kind, kind + " is"))
        return self.plain(node, kind, depth + 1)

    def top(self, node, depth):
        """The whole condition: strict mode checks the type its truth is tested on."""
        expr = self.visit(node, depth)
        return self.call("_g_top", [expr]) if self.strict else expr

    def plain(self, node, kind, depth):
        parts, expr = [], self.A.expr  # operators and displays: visit the sub-expressions
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                if any(v is None for v in value):
                    raise ConditionError("unpacking with ** is not allowed in a condition")
                parts.extend(v for v in value if isinstance(v, expr))
                setattr(node, field, [self.visit(v, depth) if isinstance(v, expr) else v for v in value])
            elif isinstance(value, expr):
                parts.append(value)
                setattr(node, field, self.visit(value, depth))
        if kind == "Constant":
            self.consts[id(node)] = node.value
        elif kind in ("Tuple", "List", "UnaryOp"):
            self.fold(node, _FOLD[type(node.op).__name__ if kind == "UnaryOp" else kind], parts)
        return node

    def strict_top(self, node):
        """Strict mode: a value whose truth or unary operator is used must be a builtin."""
        return self.call("_g_top", [node]) if self.strict else node

    def v_UnaryOp(self, node, d):
        self.plain(node, "UnaryOp", d)
        node.operand = self.strict_top(node.operand)
        return node

    def v_BoolOp(self, node, d):
        self.plain(node, "BoolOp", d)
        node.values = [self.strict_top(v) for v in node.values]
        return node

    def v_IfExp(self, node, d):
        self.plain(node, "IfExp", d)
        node.test = self.strict_top(node.test)
        return node

    def v_Set(self, node, d):          # elements are hashed
        elts = node.elts
        node.elts = [e if _literal(e) else self.sized(self.visit(e, d)) for e in elts]
        return node

    def v_Dict(self, node, d):         # keys are hashed
        if any(k is None for k in node.keys):
            raise ConditionError("unpacking with ** is not allowed in a condition")
        node.keys = [k if _literal(k) else self.sized(self.visit(k, d)) for k in node.keys]
        node.values = [self.visit(v, d) for v in node.values]
        return node

    def sized(self, expr):
        return self.call("_g_val", [expr, self.cap()])

    def cap(self):
        self.guards += 1
        return self.const(self.share)

    def call(self, name, args, keywords=()):
        A = self.A
        return A.Call(func=A.Name(id=name, ctx=A.Load()), args=list(args), keywords=list(keywords))

    def const(self, value):
        return self.A.Constant(value=value, kind=None)

    def fold(self, node, fn, parts):
        if all(id(p) in self.consts for p in parts):
            try:
                self.consts[id(node)] = fn(*[self.consts[id(p)] for p in parts])
            except ConditionEvalError as e:
                raise ConditionError(str(e))
            except Exception:
                pass                   # e.g. 1/0: left to run time, which may never get there

    def check_name(self, name, what):
        if name.startswith("_"):
            raise ConditionError("%s starting with '_' are not allowed in a condition: '%s'" % (what, name))

    def v_Name(self, node, d):
        """A value the caller provides: _e['name'], or for a call (positions given) a, k, s, an
        argument by position, else k['name']."""
        name = node.id
        self.check_name(name, "names")
        self.names.add(name)
        A, pos = self.A, self.positions
        if pos is None:
            return self.item("_e", self.const(name))
        if self.local_names is not None:
            if name in ("params", "args"):
                self.needs_tuple = True
            elif name == "target":
                return self.const(None)
            elif name in pos:
                return self.item("l", self.const(name))
        if name in ("params", "args", "kwargs", "target"):
            return A.Name(id={"kwargs": "k", "target": "s"}.get(name, "a"), ctx=A.Load())
        if name in pos:                # a named positional parameter: always in the call's args
            return self.item("a", self.const(int(pos[name])))
        return self.item("k", self.const(name))

    def item(self, var, key):
        A = self.A
        key = key if sys.version_info >= (3, 9) else A.Index(value=key)
        return A.Subscript(value=A.Name(id=var, ctx=A.Load()), slice=key, ctx=A.Load())

    def v_Attribute(self, node, d):
        self.check_name(node.attr, "attributes")
        return self.call("_g_attr", [self.visit(node.value, d), self.const(node.attr)])

    def v_Subscript(self, node, d):
        key, kind = node.slice, type(node.slice).__name__
        if kind == "ExtSlice":         # 3.8 only, as is Index
            raise ConditionError("multi-dimensional slices are not allowed in a condition")
        key = key.value if kind == "Index" else key
        names = self.local_names
        if (names is not None and type(node.value).__name__ == "Name" and node.value.id in ("params", "args")
                and type(key).__name__ == "Constant" and type(key.value) is int
                and -len(names) <= key.value < len(names)):
            self.names.add(node.value.id)
            return self.item("l", self.const(names[key.value]))  # params[0] is the first parameter
        value, key = self.visit(node.value, d), self.visit(key, d)
        if (self.positions is not None and type(value).__name__ == "Name" and value.id == "a"
                and type(key).__name__ == "Constant" and type(key.value) is int):
            return self.item("a", key)  # params[0] on the engine's own args tuple: no guard needed
        return self.call("_g_sub", [value, key, self.cap()])

    def v_Slice(self, node, d):
        parts = (node.lower, node.upper, node.step)
        return self.call("_g_slice", [self.const(None) if p is None else self.visit(p, d) for p in parts])

    def v_BinOp(self, node, d):
        """*, **, << and % always go through their guard. Any other operator with a number
        written in the condition on one side cannot build a large value (a text or container
        with a number is a TypeError); else each side is bounded (+ of two lists, | of sets...)."""
        op = type(node.op).__name__
        if op in _REFUSED:
            raise ConditionError("%s not allowed in a condition" % _REFUSED[op])
        if op == "Mod" and type(node.left).__name__ in ("Constant", "JoinedStr") \
                and isinstance(getattr(node.left, "value", ""), (str, bytes)):
            raise ConditionError("%-formatting is not allowed in a condition; use an f-string")
        original = (node.left, node.right)
        literal = [_literal(n, numeric=True) for n in original]
        left, right = self.visit(node.left, d), self.visit(node.right, d)
        guard = _OP_GUARDS.get(op)
        if guard is not None:
            share, scope = self.share, self.scope
            self.fold(node, lambda a, b: scope[guard](a, b, share), original)
            return self.call(guard, [left, right, self.cap()])
        if op in _FOLD:
            self.fold(node, _FOLD[op], original)
        if any(literal):
            left, right = [v if lit else self.strict_top(v) for v, lit in zip((left, right), literal)]
        else:
            left, right = [self.call("_g_part", [v, self.cap()]) for v in (left, right)]
        node.left, node.right = left, right
        return node

    def v_Compare(self, node, d):
        """`in` is guarded (it would iterate a generator, for one). ==, < and the others walk
        both sides when both are containers: free when one side is written in the condition,
        else both sides are bounded. Strict: every side not written in the condition."""
        ops = [type(op).__name__ for op in node.ops]
        if "In" in ops or "NotIn" in ops:
            if len(ops) > 1:
                raise ConditionError("combine 'in' with other comparisons using 'and'")
            box = node.comparators[0]
            if not self.strict and _literal(box):   # a tuple or list written out: bounded by it
                node.left = self.visit(node.left, d)
                node.comparators = [self.visit(box, d)]
                return node
            test = self.call("_g_in", [self.visit(node.left, d), self.visit(box, d), self.cap()])
            return test if ops[0] == "In" else self.A.UnaryOp(op=self.A.Not(), operand=test)
        sides = [node.left] + list(node.comparators)
        literal = [_literal(s) for s in sides]
        if len(ops) == 1 and ops[0] in _CMP and not (self.strict or any(literal)):
            # A comparison walks at most the smaller side: one of them within the share is enough.
            pair = [self.visit(s, d) for s in sides]
            return self.call("_g_cmp", pair + [self.cap(), self.const(_CMP.index(ops[0]))])
        walked = [False] * len(sides)
        for i, op in enumerate(ops):
            if op not in ("Is", "IsNot"):
                if self.strict or not (literal[i] or literal[i + 1]):
                    walked[i], walked[i + 1] = True, True
        visited = [self.visit(s, d) for s in sides]
        visited = [self.sized(v) if w and not lit else v for v, w, lit in zip(visited, walked, literal)]
        node.left, node.comparators = visited[0], visited[1:]
        return node

    def v_FormattedValue(self, node, d):   # {x}, {x!s}, {x!r}: our bounded str/repr, no format spec
        if node.format_spec is not None:
            raise ConditionError("format specs in f-strings are not allowed in a condition")
        fn = "_f_repr_short" if node.conversion in (ord("r"), ord("a")) else "_f_str"
        return self.A.FormattedValue(value=self.call(fn, [self.cap(), self.visit(node.value, d)]),
                                     conversion=-1, format_spec=None)

    def v_Call(self, node, d):
        func, kind = node.func, type(node.func).__name__
        if kind == "Name":
            name = func.id
            if name in BLOCKED:
                raise ConditionError("%s is not allowed in a condition" % name)
            if name == "isinstance":
                raise ConditionError("isinstance is not available in a condition; use type_name(x) == 'ClassName'")
            if name not in FUNCTIONS:
                raise ConditionError("calling %s() is not allowed; a condition can call %s"
                                     % (name, ", ".join(FUNCTIONS)))
            target, args = "_f_" + name, [self.cap()] if name in _SIZED_FUNCTIONS else []
        elif kind == "Attribute":
            name = func.attr
            self.check_name(name, "attributes")
            if name in MUTATORS:
                raise ConditionError("condition must not change the target: '%s' modifies its object" % name)
            if name not in _METHOD_NAMES:
                raise ConditionError("calling .%s() is not allowed; a condition can call only the methods %s"
                                     % (name, ", ".join(sorted(_METHOD_NAMES))))
            target, args = "_g_call", [self.visit(func.value, d), self.const(name), self.cap()]
        else:
            raise ConditionError("only named functions and methods can be called in a condition")
        for kw in node.keywords:
            if kw.arg is None:
                raise ConditionError("unpacking with ** is not allowed in a condition")
            if kw.arg not in KEYWORDS.get(name, ()):
                raise ConditionError("keyword argument '%s' is not allowed for %s()" % (kw.arg, name))
            kw.value = self.visit(kw.value, d)
        return self.call(target, args + [self.visit(a, d) for a in node.args], node.keywords)


def _fill_locations(node, A):
    """New nodes get a position (compile() requires one)."""
    for attr in node._attributes:
        if not hasattr(node, attr):
            setattr(node, attr, 1 if attr.endswith("lineno") else 0)
    for field in node._fields:
        value = getattr(node, field, None)
        for child in value if isinstance(value, list) else (value,):
            if isinstance(child, A.AST):
                _fill_locations(child, A)


def _compile(what, flags):
    """compile() whose warnings (`is` with a literal, invalid escapes...) refuse the condition
    instead of being printed on the target's stderr."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = compile(what, "<condition>", "eval", flags, True)
    for w in caught:
        if w.filename == "<condition>":
            raise ConditionError("%s: %s" % (w.category.__name__, w.message))
    return code


def _parse(A, source):
    try:
        return _compile(source, A.PyCF_ONLY_AST)
    except SyntaxError as e:
        raise ConditionError("syntax error: %s%s" % (e.msg, " (column %d)" % e.offset if e.offset else ""))
    except (ValueError, MemoryError, RecursionError) as e:
        raise ConditionError("condition cannot be parsed: %s" % (str(e) or type(e).__name__))


def compile_condition(source, strict=False):
    """A Condition for `source`, or ConditionError saying why it is refused. strict: the
    condition runs none of the target's code (every value an operation touches must be of an
    exact builtin type; anything else is an evaluation error)."""
    if not isinstance(source, str) or not source.strip():
        raise ConditionError("the condition must be a non-empty expression")
    source = source.strip()
    if len(source) > MAX_SOURCE:
        raise ConditionError("condition is too long (%d characters, at most %d)" % (len(source), MAX_SOURCE))
    if _bracket_depth(source) > MAX_DEPTH:
        raise ConditionError("condition is nested too deeply (at most %d levels)" % MAX_DEPTH)
    import _ast as A                   # not `ast`: importing it is slow and pulls in other modules
    counting = _Compiler(A, strict=strict)     # how many guards share the budget
    counting.top(_parse(A, source).body, 1)
    share = max(1, BUDGET // max(1, counting.guards))
    fn, names = _build(A, _parse(A, source), strict, share)
    return Condition(source, names, fn, strict, share)


# The engine filter acceptor() makes: over a call's (args, kwargs, self), or over a frame's
# locals; the condition replaces __condition__. Names the condition reads come from the
# parameters, never from this function's globals.
_ACCEPTOR = """
def accept(%(params)s):
    try:
        if not __condition__:
            return False
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        return _on_error(_explain(e, %(params)s))
    return _on_true()
"""


def _build(A, tree, strict, share):
    """The checked, guarded function fn(_e) reading names from a dict (acceptor() builds the
    forms that read them from a call)."""
    compiler = _Compiler(A, strict=strict, share=share)
    wrapper = compile("lambda _e: 0", "<condition>", "eval", A.PyCF_ONLY_AST, True)
    wrapper.body.body = compiler.top(tree.body, 1)
    _fill_locations(wrapper, A)
    try:
        return eval(_compile(wrapper, 0), compiler.scope), frozenset(compiler.names)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as e:
        raise ConditionError("condition cannot be compiled: %s" % e)


def _describe(e):
    try:
        text = str(e)
    except KeyboardInterrupt:
        raise
    except BaseException:          # even SystemExit from a hostile __str__ must not leak
        text = ""
    return _cut("%s: %s" % (reflect.type_name(type(e)), text) if text else reflect.type_name(type(e)), 200)


class Condition(object):
    __slots__ = ("source", "names", "_fn", "strict", "share", "costly")

    def __init__(self, source, names, fn, strict=False, share=BUDGET):
        self.source, self.names, self._fn = source, names, fn
        self.strict, self.share = strict, share
        self.costly = 0                # evaluations cut off by the budget (counted without a lock)

    def too_costly(self):
        """Cut off by the budget COSTLY_STOP times: each of those evaluations cost the target up
        to the whole budget, so the caller stops instead of paying it on every call."""
        return self.costly >= COSTLY_STOP

    def stop_message(self, last_error):
        """What a command says when it stops because too_costly() became true."""
        return ("stopped: the condition was cut off by its budget %d times (%s); it would slow every "
                "call of the target" % (self.costly, last_error))

    def evaluate(self, env):
        """True/False for one call; any failure becomes ConditionEvalError (KeyboardInterrupt passes)."""
        try:
            return True if self._fn(env) else False
        except BudgetError:
            self.costly += 1
            raise
        except (ConditionEvalError, KeyboardInterrupt):
            raise
        except BaseException as e:
            raise ConditionEvalError(self._explain(e, env))

    def evaluate_call(self, arg_names, args, kwargs, self_obj, result=None, exception=None, cost_ms=None):
        """evaluate() with the names of one call — params/args, kwargs, target, result,
        exception, cost (ms; unavailable when None) and every argument by name — building only
        the names this condition uses."""
        env = {}
        for name in self.names:
            if name in ("params", "args"):
                env[name] = args
            elif name == "kwargs":
                env[name] = kwargs
            elif name == "target":
                env[name] = self_obj
            elif name == "result":
                env[name] = result
            elif name == "exception":
                env[name] = exception
            elif name == "cost":
                if cost_ms is not None:
                    env[name] = cost_ms
            elif name in arg_names:
                i = arg_names.index(name)
                env[name] = args[i] if i < len(args) else None
            elif name in kwargs:
                env[name] = kwargs[name]
        return self.evaluate(env)

    def acceptor(self, positions, on_true, on_error, local_names=None):
        """The condition as an engine filter, compiled straight over a call: accept(args, kwargs,
        self_obj) reads the names it uses from the call (no dict is built; `positions` maps argument
        names to their index in args, other names are looked up in kwargs) and returns False when
        the condition is false, on_true() when it is true, and on_error(message) when it fails
        (the message evaluate() would give; KeyboardInterrupt passes).
        With local_names (a function with positional parameters only): accept(frame_locals)
        instead, or None when the condition needs params/args as a whole."""
        import _ast as A
        compiler = _Compiler(A, positions, local_names, self.strict, self.share)
        expr = compiler.top(_compile(self.source, A.PyCF_ONLY_AST).body, 1)
        if compiler.needs_tuple:
            return None
        template = _ACCEPTOR % {"params": "a, k, s" if local_names is None else "l"}
        module = compile(template, "<condition>", "exec", A.PyCF_ONLY_AST, True)
        module.body[0].body[0].body[0].test.operand = expr   # `if not <condition>:`
        _fill_locations(module, A)
        if local_names is None:
            explain = self._call_explainer(positions)
        else:
            call_explain = self._call_explainer(positions)

            def explain(e, l):
                return call_explain(e, tuple(l[n] for n in local_names), {}, None)
        scope = dict(compiler.scope, _on_true=on_true, _on_error=on_error, _explain=explain, k={},
                     KeyboardInterrupt=KeyboardInterrupt, BaseException=BaseException)
        try:
            exec(compile(module, "<condition>", "exec", 0, True), scope)
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as e:
            raise ConditionError("condition cannot be compiled: %s" % e)
        return scope["accept"]

    def _call_explainer(self, positions):
        def explain(e, a, k, s):
            if isinstance(e, ConditionEvalError):
                if isinstance(e, BudgetError):
                    self.costly += 1
                return str(e)
            env = dict(k)
            env.update((n, a[i] if len(a) > i else None) for n, i in positions.items())
            env.update(params=a, args=a, kwargs=k, target=s)
            return self._explain(e, env)
        return explain

    def _explain(self, e, env):
        if isinstance(e, KeyError):
            key = e.args[0] if len(e.args) == 1 else None
            if type(key) is str and key in self.names and key not in env:
                return "name '%s' is not available here" % key
        return _describe(e)

    def __repr__(self):
        return "Condition(%r)" % self.source


def compile_for_command(source, targets=None, strict=False):
    """compile_condition() for a command snippet: None for no condition; a refusal becomes the
    CommandError of the `errors` library it requires, with code BAD_CONDITION.
    targets (instrument's resolved functions): a name that none of them can receive is refused
    now rather than failing on every call."""
    if not source:
        return None
    try:
        cond = compile_condition(source, bool(strict))
        if targets:
            _check_names(cond.names, targets)
        return cond
    except ConditionError as e:
        raise errors.CommandError("bad condition: %s" % e, code="BAD_CONDITION")


_CO_VARKEYWORDS = 0x08


def _check_names(names, targets):
    """Every name is one of NAMES or a parameter of some target (any name may come in the
    **kwargs of a target that has them)."""
    known = set(NAMES)
    for t in targets:
        code = t.code
        if code.co_flags & _CO_VARKEYWORDS:
            return
        known.update(t.arg_names)
        known.update(code.co_varnames[code.co_argcount:code.co_argcount + code.co_kwonlyargcount])
    unknown = sorted(n for n in names if n not in known)
    if unknown:
        hint = "; the instance is 'target'" if "self" in unknown or "cls" in unknown else ""
        raise ConditionError("'%s' is not a parameter of %s (names: %s%s)" % (
            unknown[0], ", ".join(t.name for t in targets[:3]) + (", ..." if len(targets) > 3 else ""),
            ", ".join(sorted(known)), hint))
