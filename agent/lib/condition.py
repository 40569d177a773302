# Agent library `condition`: compiles a --condition expression once, then evaluates it for
# every observed call, on the target's own threads.
#
# The expression is parsed, checked against a whitelist of syntax and rewritten so that every
# attribute read, subscript, call and size-risky operator goes through a guard below; it then
# runs as a lambda without builtins. A condition only reads: it calls none of the target's
# methods (beyond operators, property getters and __str__/__repr__), never changes an object,
# and refuses work whose size could stall the process. Types are compared by identity or
# issubclass, never hashed, so that an odd metaclass runs no code here.
import sys


class ConditionError(Exception):
    """The condition is refused before any call is observed; str() is a one-line reason."""


class ConditionEvalError(Exception):
    """Evaluating the condition for one call failed; the caller counts these."""


MAX_SOURCE = 1000      # characters
MAX_DEPTH = 40         # nesting of brackets and of the syntax tree
MAX_NODES = 300        # parts of the expression
MAX_EXPONENT = 1000    # int ** int: exponent at most this,
MAX_POW_BITS = 4000    # and a result of at most about this many bits
MAX_ITEMS = 100000     # what sequence * n, or str.replace, may build
MAX_SHIFT = 10000      # a << b
MAX_DIGITS = 4300      # int <-> str (3.8-3.10 have no limit of their own)
_INT_BITS = 14284      # about MAX_DIGITS decimal digits

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

_MISSING = object()
_type_mro = type.__dict__["__mro__"].__get__          # type slots read directly: a metaclass
_type_dict = type.__dict__["__dict__"].__get__        # may shadow these attributes
_tn = type.__dict__["__qualname__"].__get__


def _refuse(message):
    raise ConditionEvalError(message)


_FUNCTION = type(_refuse)
_WRAPPER = type(object.__init__)                      # a dunder implemented in C
_METHOD_DESC = type(str.join)
_GETSET = type(type.__dict__["__dict__"])             # C-level attribute
_MEMBER = type(type.__dict__["__weakrefoffset__"])    # __slots__ entry
# An attribute holding one of these is the target's code, which a condition never gets hold of.
_CODE = (type, _FUNCTION, type(_refuse.__get__(0)), type(len), type(sys), classmethod, staticmethod, property,
         _WRAPPER, _METHOD_DESC, type(object().__str__), type(dict.__dict__["fromkeys"]), _GETSET, _MEMBER)


def _lookup(t, name):
    """`name` as found on type t or its bases, without running any descriptor."""
    for k in _type_mro(t):
        d = _type_dict(k)
        if name in d:
            return d[name]
    return _MISSING


def _instance_dict(o, t):
    d = _lookup(t, "__dict__")
    if type(d) is _GETSET or type(d) is _MEMBER:
        d = d.__get__(o, t)
        if type(d) is dict:
            return d
    return None


def _static_attr(o, t, name):
    """o.name the way Python finds it, minus __getattr__/__getattribute__ and code-run descriptors."""
    attr, idict = _lookup(t, name), _instance_dict(o, t)
    own = idict is not None and name in idict
    if attr is _MISSING:
        if own:
            return idict[name]
        _refuse("%s object has no attribute '%s'" % (_tn(t), name))
    at = type(attr)
    if issubclass(at, property):                       # reading a property runs its getter: accepted
        fget = property.__dict__["fget"].__get__(attr)
        if fget is None:
            _refuse("attribute '%s' of %s cannot be read" % (name, _tn(t)))
        return fget(o)
    if at is _MEMBER or at is _GETSET:                 # slots, C-level fields
        return attr.__get__(o, t)
    get = _lookup(at, "__get__")
    if get is _MISSING:                                # a plain value on the class
        return idict[name] if own else attr
    if own and _lookup(at, "__set__") is _MISSING and _lookup(at, "__delete__") is _MISSING:
        return idict[name]
    if type(get) is _WRAPPER:                          # C descriptors: namedtuple fields, functions...
        return get(attr, o, t)
    adict = _instance_dict(attr, at)
    fget = adict.get("fget") if adict is not None else None
    if type(fget) is _FUNCTION:                        # property look-alikes: Enum's name and value
        return fget(o)
    if own:                                            # e.g. an ORM attribute already loaded
        return idict[name]
    _refuse("attribute '%s' of %s is computed by the target's code" % (name, _tn(t)))


def read_attribute(o, name):
    """obj.name for tools that show objects (inspect): the value as a condition would read it
    (no __getattr__, no descriptor that runs code other than a property's getter), but code
    objects (functions, classes) are returned too. Classes are looked up in their own MRO.
    Raises ConditionEvalError saying why it cannot be read."""
    if isinstance(o, type):
        value = _lookup(o, name)
        if value is _MISSING:
            _refuse("class %s has no attribute '%s'" % (_tn(o), name))
        return value
    return _static_attr(o, type(o), name)


def _replace(base):
    def replace(s, old, new, count=-1):
        if issubclass(type(old), _TEXTS) and issubclass(type(new), _TEXTS):
            grow = _base(type(new)).__len__(new) - _base(type(old)).__len__(old)
            n = base.count(s, old)
            if grow > 0 and (n if count < 0 else min(n, count)) * grow > MAX_ITEMS:
                _refuse("replace() would add more than %d characters" % MAX_ITEMS)
        return base.replace(s, old, new, count)
    return replace


# Builtin types, by id: the methods a condition may call and the data attributes it may read.
_BUILTINS, _METHODS, _PROPS = {}, {}, {}
for _t, _names, _props in ((str, _STR_METHODS, ()), (bytes, _STR_METHODS, ()), (bytearray, _STR_METHODS, ()),
                           (dict, ("get", "keys", "values", "items"), ()), (list, ("count", "index"), ()),
                           (tuple, ("count", "index"), ()), (int, ("is_integer",), ("real", "imag")),
                           (bool, ("is_integer",), ("real", "imag")), (float, ("is_integer",), ("real", "imag")),
                           (complex, (), ("real", "imag")), (set, (), ()), (frozenset, (), ()), (range, (), ()),
                           (type(None), (), ())):
    _BUILTINS[id(_t)] = _t
    _METHODS[id(_t)] = dict((n, _replace(_t) if n == "replace" else getattr(_t, n)) for n in _names if hasattr(_t, n))
    _PROPS[id(_t)] = dict((n, _lookup(_t, n).__get__) for n in _props)
del _t, _names, _props
_METHOD_NAMES = frozenset(n for table in _METHODS.values() for n in table)
_TEXTS = (str, bytes, bytearray)
_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))
_CONTAINERS = (dict, list, tuple, set, frozenset)


def _base(t):
    """The builtin type t is or derives from, or None."""
    for k in _type_mro(t):
        if id(k) in _BUILTINS:
            return k
    return None


# ---- guards the rewritten expression calls ----------------------------------------------------
def _g_attr(o, name):
    t = type(o)
    base = t if id(t) in _PROPS else _base(t)
    if base is not None:
        if name in _PROPS[id(base)]:
            return _PROPS[id(base)][name](o)
        if name in _METHODS[id(base)]:
            _refuse("'%s' is a method of %s: call it" % (name, _tn(base)))
        if base is t:
            _refuse("%s has no attribute '%s' that a condition may read" % (_tn(t), name))
    value = _static_attr(o, t, name)                   # user objects, builtin subclasses' own fields
    if issubclass(type(value), _CODE):
        _refuse("'%s' of %s is a %s: a condition never uses the target's code" % (name, _tn(t), _tn(type(value))))
    return value


def _g_call(o, name, *args, **kwargs):
    base = _base(type(o))
    method = _METHODS[id(base)].get(name) if base is not None else None
    if method is None:
        _refuse("%s.%s() cannot be called in a condition" % (_tn(type(o)), name))
    return method(o, *args, **kwargs)                  # the builtin's own method, even on subclasses


def _g_sub(o, key):
    t = type(o)
    if t is tuple or t is list or t is dict or t is str:
        return o[key]
    base = _base(t)
    if base is dict:                                   # not d[key]: a subclass's __missing__ may insert
        value = dict.get(o, key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value
    if base is None or not issubclass(base, _TEXTS + (list, tuple, range)):
        _refuse("%s object cannot be subscripted in a condition" % _tn(t))
    return base.__getitem__(o, key)


def _g_pow(a, b):
    if issubclass(type(b), int):
        if b > MAX_EXPONENT:
            _refuse("exponent too large in a condition (at most %d)" % MAX_EXPONENT)
        if issubclass(type(a), int) and b > 0 and int.bit_length(a) * b > MAX_POW_BITS:
            _refuse("power too large in a condition (at most about %d bits)" % MAX_POW_BITS)
    return a ** b


def _g_mul(a, b):
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a * b
    seq, n = (a, b) if issubclass(ta, _TEXTS + (list, tuple)) else (b, a)
    if issubclass(type(seq), _TEXTS + (list, tuple)) and issubclass(type(n), int) and n > 1:
        if _base(type(seq)).__len__(seq) * n > MAX_ITEMS:
            _refuse("repetition too large in a condition (at most %d items)" % MAX_ITEMS)
    return a * b


def _g_lshift(a, b):
    if issubclass(type(b), int) and b > MAX_SHIFT:
        _refuse("shift too large in a condition (at most %d)" % MAX_SHIFT)
    return a << b


def _g_mod(a, b):
    if issubclass(type(a), _TEXTS):
        _refuse("%-formatting is not allowed in a condition; use an f-string")
    return a % b


def _g_in(item, box):
    t = type(box)
    if not (t is tuple or t is dict or t is str or t is list or t is set or t is frozenset):
        if _base(t) is None and _lookup(t, "__contains__") is _MISSING and not issubclass(t, _VIEWS):
            _refuse("'in' would iterate %s; give it a str, list, tuple, set or dict" % _tn(t))
    return item in box


def _text(x, limit):
    """str(x) (limit None) or repr(x) cut to `limit`; refuses what would stall the target."""
    t = type(x)
    if t is str:
        return x if limit is None else _cut(repr(x[:limit]), limit)
    if issubclass(t, int) and int.bit_length(x) > _INT_BITS:
        if limit is None:
            _refuse("an int with more than %d digits cannot be made text in a condition" % MAX_DIGITS)
        return "<int with more than %d digits>" % MAX_DIGITS
    if issubclass(t, _CONTAINERS) and _base(t).__len__(x) > 1000:
        if limit is None:
            _refuse("str() of a %s with more than 1000 items is not allowed in a condition" % _tn(t))
        return "<%s with %d items>" % (_tn(t), _base(t).__len__(x))
    return str(x) if limit is None else _cut(repr(x), limit)


def _cut(s, limit):
    return s if len(s) <= limit else s[:limit - 3] + "..."


def _f_str(x="", *rest):
    return str(x, *rest) if rest else _text(x, None)


def _f_int(x=0, *rest):
    if issubclass(type(x), _TEXTS) and _base(type(x)).__len__(x) > MAX_DIGITS:
        _refuse("int() of a string longer than %d characters is not allowed" % MAX_DIGITS)
    return int(x, *rest)


def _f_len(x):
    t = type(x)
    if not (t is tuple or t is list or t is dict or t is str):
        impl = _lookup(t, "__len__")
        if impl is not _MISSING and type(impl) is not _WRAPPER and type(impl) is not _METHOD_DESC:
            _refuse("len() of %s would run its own __len__" % _tn(t))
    return len(x)


def _minmax(fn):
    def guarded(*args):
        if len(args) != 1:
            return fn(*args)
        x, t = args[0], type(args[0])
        base = _base(t)                                # never iterate a user iterable (or generator)
        if base is None or not issubclass(base, _CONTAINERS + _TEXTS):
            _refuse("%s() of %s would iterate it; give it a str, list, tuple, set or dict" % (fn.__name__, _tn(t)))
        return fn(x if base is t else dict.keys(x) if base is dict else base.__iter__(x))
    return guarded


def _f_round(x, ndigits=None):
    if ndigits is None:
        return round(x)
    if not issubclass(type(ndigits), int) or not -1000 <= ndigits <= 1000:
        _refuse("round() needs ndigits to be an int between -1000 and 1000")
    return round(x, ndigits)


_GLOBALS = {"__builtins__": {}, "_g_attr": _g_attr, "_g_call": _g_call, "_g_sub": _g_sub, "_g_slice": slice,
            "_g_in": _g_in, "_g_pow": _g_pow, "_g_mul": _g_mul, "_g_lshift": _g_lshift, "_g_mod": _g_mod,
            "_f_len": _f_len, "_f_str": _f_str, "_f_int": _f_int, "_f_float": float, "_f_bool": bool,
            "_f_abs": abs, "_f_min": _minmax(min), "_f_max": _minmax(max), "_f_round": _f_round,
            "_f_repr_short": lambda x: _text(x, 200), "_f_type_name": lambda x: _tn(type(x))}
_OP_GUARDS = {"Pow": _g_pow, "Mult": _g_mul, "LShift": _g_lshift, "Mod": _g_mod}
_FOLD = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "FloorDiv": lambda a, b: a // b,
         "USub": lambda a: -a, "UAdd": lambda a: +a, "Invert": lambda a: ~a, "Not": lambda a: not a,
         "Tuple": lambda *v: v, "List": lambda *v: list(v)}
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


class _Compiler(object):
    """Checks the tree against the whitelist and rewrites it to call the guards."""

    def __init__(self, A, positions=None, local_names=None):
        self.A, self.nodes, self.names, self.positions = A, 0, set(), positions
        # With local_names the arguments are read from the frame's locals `l` (positional
        # parameters only); needs_tuple says the condition uses params/args as a whole.
        self.local_names, self.needs_tuple = local_names, False
        self.consts = {}               # id(original node) -> value: constant bombs are refused now

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
        return self.call("_g_sub", [value, key])

    def v_Slice(self, node, d):
        parts = (node.lower, node.upper, node.step)
        return self.call("_g_slice", [self.const(None) if p is None else self.visit(p, d) for p in parts])

    def v_BinOp(self, node, d):
        op = type(node.op).__name__
        if op in _REFUSED:
            raise ConditionError("%s not allowed in a condition" % _REFUSED[op])
        if op == "Mod" and type(node.left).__name__ in ("Constant", "JoinedStr") \
                and isinstance(getattr(node.left, "value", ""), (str, bytes)):
            raise ConditionError("%-formatting is not allowed in a condition; use an f-string")
        left, right = self.visit(node.left, d), self.visit(node.right, d)
        guard = _OP_GUARDS.get(op)
        if guard is not None or op in _FOLD:
            self.fold(node, guard or _FOLD[op], (node.left, node.right))
        if guard is None:
            node.left, node.right = left, right
            return node
        return self.call(guard.__name__, [left, right])

    def v_Compare(self, node, d):       # `in` is guarded: it would iterate a generator, for one
        ops = [type(op).__name__ for op in node.ops]
        if "In" not in ops and "NotIn" not in ops:
            return self.plain(node, "Compare", d)
        if len(ops) > 1:
            raise ConditionError("combine 'in' with other comparisons using 'and'")
        test = self.call("_g_in", [self.visit(node.left, d), self.visit(node.comparators[0], d)])
        return test if ops[0] == "In" else self.A.UnaryOp(op=self.A.Not(), operand=test)

    def v_FormattedValue(self, node, d):   # {x}, {x!s}, {x!r}: our bounded str/repr, no format spec
        if node.format_spec is not None:
            raise ConditionError("format specs in f-strings are not allowed in a condition")
        fn = "_f_repr_short" if node.conversion in (ord("r"), ord("a")) else "_f_str"
        return self.A.FormattedValue(value=self.call(fn, [self.visit(node.value, d)]), conversion=-1,
                                     format_spec=None)

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
            target, args = "_f_" + name, []
        elif kind == "Attribute":
            name = func.attr
            self.check_name(name, "attributes")
            if name in MUTATORS:
                raise ConditionError("condition must not change the target: '%s' modifies its object" % name)
            if name not in _METHOD_NAMES:
                raise ConditionError("calling .%s() is not allowed; a condition can call only the methods %s"
                                     % (name, ", ".join(sorted(_METHOD_NAMES))))
            target, args = "_g_call", [self.visit(func.value, d), self.const(name)]
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


def compile_condition(source):
    """A Condition for `source`, or ConditionError saying why it is refused."""
    if not isinstance(source, str) or not source.strip():
        raise ConditionError("the condition must be a non-empty expression")
    source = source.strip()
    if len(source) > MAX_SOURCE:
        raise ConditionError("condition is too long (%d characters, at most %d)" % (len(source), MAX_SOURCE))
    if _bracket_depth(source) > MAX_DEPTH:
        raise ConditionError("condition is nested too deeply (at most %d levels)" % MAX_DEPTH)
    import _ast as A                   # not `ast`: importing it is slow and pulls in other modules
    try:
        tree = _compile(source, A.PyCF_ONLY_AST)
    except SyntaxError as e:
        raise ConditionError("syntax error: %s%s" % (e.msg, " (column %d)" % e.offset if e.offset else ""))
    except (ValueError, MemoryError, RecursionError) as e:
        raise ConditionError("condition cannot be parsed: %s" % (str(e) or type(e).__name__))
    fn, names = _build(A, tree)
    return Condition(source, names, fn)


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


def _build(A, tree):
    """The checked, guarded function fn(_e) reading names from a dict (acceptor() builds the
    forms that read them from a call)."""
    compiler = _Compiler(A)
    wrapper = compile("lambda _e: 0", "<condition>", "eval", A.PyCF_ONLY_AST, True)
    wrapper.body.body = compiler.visit(tree.body, 1)
    _fill_locations(wrapper, A)
    try:
        return eval(_compile(wrapper, 0), _GLOBALS), frozenset(compiler.names)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as e:
        raise ConditionError("condition cannot be compiled: %s" % e)


def _describe(e):
    try:
        text = str(e)
    except KeyboardInterrupt:
        raise
    except BaseException:          # even SystemExit from a hostile __str__ must not leak
        text = ""
    return _cut("%s: %s" % (_tn(type(e)), text) if text else _tn(type(e)), 200)


class Condition(object):
    __slots__ = ("source", "names", "_fn")

    def __init__(self, source, names, fn):
        self.source, self.names, self._fn = source, names, fn

    def evaluate(self, env):
        """True/False for one call; any failure becomes ConditionEvalError (KeyboardInterrupt passes)."""
        try:
            return True if self._fn(env) else False
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
        compiler = _Compiler(A, positions, local_names)
        expr = compiler.visit(_compile(self.source, A.PyCF_ONLY_AST).body, 1)
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
        scope = dict(_GLOBALS, _on_true=on_true, _on_error=on_error, _explain=explain, k={},
                     KeyboardInterrupt=KeyboardInterrupt, BaseException=BaseException)
        try:
            exec(compile(module, "<condition>", "exec", 0, True), scope)
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as e:
            raise ConditionError("condition cannot be compiled: %s" % e)
        return scope["accept"]

    def _call_explainer(self, positions):
        def explain(e, a, k, s):
            if isinstance(e, ConditionEvalError):
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


def compile_for_command(source):
    """compile_condition() for a command snippet: None for no condition; a refusal becomes the
    agent's CommandError (defined in this module's namespace by the agent) with code BAD_CONDITION."""
    if not source:
        return None
    try:
        return compile_condition(source)
    except ConditionError as e:
        raise CommandError("bad condition: %s" % e, code="BAD_CONDITION")  # noqa: F821
