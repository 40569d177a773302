# source: the source of a loaded function, method, class, nested function or lambda, as the
# process runs it (Arthas jad), and whether the file on disk still matches the loaded code.
#
# No code of the target runs. The text comes from, in this order: the file named by the code's
# co_filename, read from disk by us; linecache's cache read as data (never linecache.getlines,
# whose lazy entries call a module's loader); a zip archive's source through the loader only
# when it is exactly the stdlib's zipimport.zipimporter. A loader of any other type (a
# framework's, a plugin's) is never called. Whether a text matches the loaded code is decided
# by compiling the text (compiling does not run it) and comparing each code object: bytecode,
# constants, names, first line and line table. `dis` is imported only to show the bytecode of
# code that has no matching text (stale, or defined from a string); the result says so.
import os
import sys
import types

REQUIRES = ("errors", "reflect", "names", "classes", "codes")

MAX_FILE_BYTES = 4 << 20        # a bigger file is not read
MAX_LINES = 2000                # lines shown per object
MAX_DIS_LINES = 1500            # disassembly lines shown per object
MAX_ITEMS = 50                  # objects one pattern may show
_TRAMPOLINE = "__peeka_trampoline__"   # instrument's mark (3.8-3.11): (mark, original code)
_PLAIN = (int, float, complex, str, bytes, bool, type(None), type(Ellipsis))
_CODE = types.CodeType


def run(ctx, args):
    pattern = args.get("pattern")
    if not isinstance(pattern, str) or not pattern.strip():
        raise errors.CommandError("a pattern is required, e.g. myapp.views.index", code="BAD_PATTERN")
    had_dis = "dis" in sys.modules
    texts = Texts()
    items = find(pattern.strip())
    stale = 0
    for item in items[:MAX_ITEMS]:
        shown = show(item, texts)
        stale += bool(shown["stale"])
        ctx.emit(shown)
    imported = ["dis"] if "dis" in sys.modules and not had_dis else []
    return {"pattern": pattern, "count": min(len(items), MAX_ITEMS), "total": len(items),
            "stale": stale, "imported": imported}


def _error(code, message):
    return errors.CommandError(message, code=code)


# ---- a pattern -> what it names -----------------------------------------------------------------
class Item(object):
    """What a pattern named: a function-like code (with its function when there is one) or a
    class (with the codes of its methods). `path` is the qualified name without '<locals>',
    which is how the same code is found in the file's compiled text."""

    def __init__(self, name, kind, code=None, func=None, cls=None, module=None, path=None):
        self.name, self.kind, self.code, self.func, self.cls = name, kind, code, func, cls
        self.module, self.path = module, path


def find(pattern):
    parts = pattern.split(".")
    for i, part in enumerate(parts):
        if not (part.isidentifier() or part in ("<locals>", "<lambda>") or (part == "*" and i == len(parts) - 1)):
            raise _error("BAD_PATTERN", "bad pattern '%s': '%s' is not a Python name (use module.func, "
                         "module.Class, module.Class.method, module.func.<locals>.inner or "
                         "module.func.<lambda>)" % (pattern, part))
    if len(parts) < 2:
        raise _error("BAD_PATTERN", "name the module too, e.g. 'mymodule.%s'" % parts[0])
    found, seen, refusal = [], set(), None
    for module, used in names.module_scopes(parts, _error):
        try:
            items = walk(module, parts, used)
        except errors.CommandError as e:
            refusal = refusal or e
            continue
        for item in items:
            key = id(item.cls if item.cls is not None else item.code)
            if key not in seen:
                seen.add(key)
                found.append(item)
    if not found:
        raise refusal
    return found


def walk(module, parts, used):
    """Follows the names after the module: attributes of modules and classes (read from their
    dictionaries), then, inside a function, the code objects among its constants."""
    modname = ".".join(parts[:used])
    current = [(module, None, modname)]        # (object, code, path) - code once inside a function
    for i in range(used, len(parts)):
        part, nxt = parts[i], []
        for obj, code, path in current:
            nxt.extend(_step(obj, code, path, part))
        if not nxt:
            raise _missing(parts, i)
        current = nxt
    return [_item(".".join(parts), obj, code, path, module, modname) for obj, code, path in current]


def _step(obj, code, path, part):
    if part == "*":
        return [(v, None, path + "." + k) for k, v in _class_members(obj)] if reflect.is_class(obj) else []
    if code is None and (reflect.is_module(obj) or reflect.is_class(obj)) and part != "<locals>":
        value = _attribute(obj, part)
        return [] if value is reflect.MISSING else [(value, None, path + "." + part)]
    code = code if code is not None else function_code(obj)
    if code is None:
        return []
    if part == "<locals>":
        return [(None, code, path)]
    return [(None, c, path + "." + part) for c in code.co_consts if type(c) is _CODE and c.co_name == part]


def _attribute(obj, name):
    if reflect.is_module(obj):
        return reflect.module_dict(obj).get(name, reflect.MISSING)
    return reflect.lookup(obj, name)


def _class_members(cls):
    return [(k, v) for k, v in list(reflect.type_dict(cls).items())
            if type(k) is str and function_code(v) is not None]


def _missing(parts, i):
    where, what = ".".join(parts[:i]), parts[i]
    return _error("NOT_FOUND", "%s is loaded but has no '%s' (a nested function is "
                  "%s.<locals>.%s; a lambda is <lambda>)" % (where, what, where, what))


def _item(name, obj, code, path, module, modname):
    path = path[len(modname) + 1:]
    if reflect.is_class(obj):
        return Item(name, "class", cls=obj, module=module, path=reflect.type_name(obj).replace("<locals>.", ""))
    if code is None:
        code = function_code(obj)
        if code is None:
            raise _error("NOT_FOUND", "%s is %s: it has no Python source (source shows functions, "
                         "methods, classes, nested functions and lambdas)" % (name, _a(obj)))
        func = _function(obj)
        path = _qual(func, code).replace("<locals>.", "") or path
        kind = "lambda" if code.co_name == "<lambda>" else "method" if "." in path else "function"
        return Item(name, kind, code=code, func=func, module=module, path=path)
    kind = "lambda" if code.co_name == "<lambda>" else "class body" if _is_class_body(code) else "nested function"
    return Item(name, kind, code=code, module=module, path=path)


def _a(obj):
    kind = reflect.type_simple_name(type(obj))
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


def _is_class_body(code):
    return "__qualname__" in code.co_names and "__module__" in code.co_names and not code.co_varnames


def _function(obj):
    """The Python function behind a descriptor, bound method or decorator (__wrapped__)."""
    for _ in range(64):
        obj = classes.function_of(obj)
        if type(obj) is types.MethodType:
            obj = obj.__func__
        if type(obj) is not types.FunctionType:
            return None
        inner = reflect.fields(obj).get("__wrapped__", reflect.MISSING)
        if inner is reflect.MISSING:
            return obj
        obj = inner
    return None


def function_code(obj):
    func = _function(obj)
    return original_code(func.__code__) if func is not None else None


def original_code(code):
    """The code as loaded: a function watched on 3.8-3.11 runs a trampoline whose last
    constant keeps its original code."""
    last = code.co_consts[-1] if code.co_consts else None
    if type(last) is tuple and len(last) == 2 and last[0] == _TRAMPOLINE and type(last[1]) is _CODE:
        return last[1]
    return code


# ---- texts: where the source is read from ------------------------------------------------------
class Text(object):
    """One candidate text of a file: its lines, where they came from, and its compiled code
    objects by path (compiled once, on first comparison)."""

    def __init__(self, filename, text, origin):
        self.filename, self.origin = filename, origin
        self.lines = text.splitlines()
        self.text = text
        self._index = None
        self.compile_error = None

    def codes(self, path):
        if self._index is None:
            self._index = {}
            try:
                module = compile(self.text, self.filename, "exec", dont_inherit=True,
                                 optimize=sys.flags.optimize)
            except (SyntaxError, ValueError) as e:
                self.compile_error = "%s: %s" % (type(e).__name__, e)
                return []
            _index_codes(module, "", self._index)
        return self._index.get(path, [])


def _index_codes(code, prefix, index):
    for c in code.co_consts:
        if type(c) is _CODE:
            path = prefix + c.co_name
            index.setdefault(path, []).append(c)
            _index_codes(c, path + ".", index)


class Texts(object):
    """Every candidate text of a file name, read once per command."""

    def __init__(self):
        self._by_name = {}

    def of(self, filename, module):
        if filename not in self._by_name:
            self._by_name[filename] = [t for t in (_from_disk(filename), _from_linecache(filename),
                                                   _from_zip(filename, module)) if t is not None]
        return self._by_name[filename]


def _from_disk(filename):
    if type(filename) is not str or not os.path.isabs(filename):
        return None
    try:
        import _io
        with _io.open(filename, "rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_FILE_BYTES or not os.path.isfile(filename):
                return None
            return Text(filename, decode(f.read(MAX_FILE_BYTES)), "file")
    except (OSError, ValueError):
        return None


def _from_linecache(filename):
    """linecache's entry as stored (the text as the process once read it), never a lazy one."""
    cache = reflect.module_dict(sys.modules["linecache"]).get("cache") if "linecache" in sys.modules else None
    if type(cache) is not dict:
        return None
    for key, entry in list(cache.items()):   # compared by us: no key's __eq__ runs
        if type(key) is str and key == filename and type(entry) is tuple and len(entry) == 4:
            lines = entry[2]
            if type(lines) is list and all(type(line) is str for line in lines):
                return Text(filename, "".join(lines), "linecache")
    return None


def _from_zip(filename, module):
    """A module inside a zip archive: its loader's get_source, only for the stdlib's own
    zipimporter (its code is known; another loader could run anything)."""
    zipimport = sys.modules.get("zipimport")
    if module is None or zipimport is None or ".zip" not in filename:
        return None
    g = reflect.module_dict(module)
    loader, name = g.get("__loader__"), g.get("__name__")
    if type(loader) is not reflect.module_dict(zipimport).get("zipimporter") or type(name) is not str:
        return None
    try:
        text = loader.get_source(name)
    except Exception:
        return None
    return Text(filename, text, "zip loader") if type(text) is str else None


def decode(data):
    """A Python file's bytes as text (PEP 263: a BOM or a coding line; utf-8 otherwise). Only
    codecs built into the interpreter are used: a codec registered by the target is not run."""
    if data[:3] == b"\xef\xbb\xbf":
        return data[3:].decode("utf-8", "replace")
    import re
    for line in data.split(b"\n", 2)[:2]:
        m = re.match(br"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", line)
        if m:
            name = m.group(1).decode("ascii").lower().replace("_", "-")
            if name in ("latin-1", "iso-8859-1", "iso8859-1", "latin1", "l1"):
                return data.decode("latin-1")
            if name in ("ascii", "us-ascii"):
                return data.decode("ascii", "replace")
            break
    return data.decode("utf-8", "replace")


# ---- comparing a code object with a text -------------------------------------------------------
def shape(code):
    """What must be equal for a compiled code to be the loaded one: bytecode, names, first
    line, line and exception tables, and the constants (nested code compared the same way)."""
    table = getattr(code, "co_linetable", None)
    if table is None:
        table = code.co_lnotab       # 3.8/3.9 (3.12+ warns on co_lnotab: not read there)
    return (code.co_code, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
            code.co_firstlineno, table, getattr(code, "co_exceptiontable", None),
            code.co_flags, tuple(_const_shape(c) for c in code.co_consts))


def _const_shape(value):
    kind = type(value)
    if kind is _CODE:
        return ("code", shape(value))
    if kind is tuple:
        return ("tuple", tuple(_const_shape(v) for v in value))
    if kind is frozenset:
        return ("frozenset", tuple(sorted(repr(_const_shape(v)) for v in value)))
    if kind in _PLAIN:
        return (kind.__name__, repr(value))      # repr of a builtin type: no target code
    return ("object", id(value))                # not made by the compiler: never equal


def match(code, path, texts):
    """(text whose compiled code equals `code`, or None; the file's current code for it, or None;
    why it does not match)."""
    current, why = None, "no readable source"
    for text in texts:
        candidates = text.codes(path)
        wanted = shape(code)
        for c in candidates:
            if shape(c) == wanted:
                return text, c, None
        if text.origin == "file":
            current = _closest(candidates, code.co_firstlineno)
            why = _difference(text, code, current, path)
    return None, current, why


def _difference(text, code, current, path):
    if text.compile_error:
        return "the file does not compile now (%s)" % text.compile_error
    if current is None:
        return "the file has no %s now" % (path or code.co_name)
    if _without_lines(shape(current)) == _without_lines(shape(code)):
        return "the same code is at line %d in the file now, not %d" % (current.co_firstlineno, code.co_firstlineno)
    return "the file's %s differs from the loaded code" % (path or code.co_name)


def _without_lines(s):
    """A shape without first line and line table (nested code's too)."""
    consts = tuple(("code", _without_lines(c[1])) if c[0] == "code" else c for c in s[9])
    return s[:5] + s[7:9] + (consts,)


def _closest(candidates, line):
    return min(candidates, key=lambda c: abs(c.co_firstlineno - line)) if candidates else None


# ---- lines of a code object ---------------------------------------------------------------------
def code_lines(code):
    """The source lines a code object (and the code nested in it) has instructions for; on
    3.11+ also where its multi-line statements end."""
    lines = set([code.co_firstlineno])
    for c in codes.nested(code):
        lines |= codes.own_lines(c)
        if hasattr(c, "co_positions"):
            lines.update(end for _, end, _, _ in c.co_positions() if end is not None)
    return lines


def span(code):
    lines = code_lines(code)
    return min(lines), max(lines)


def class_span(cls, codes, text):
    """(first, last) line of a class: its own line (__firstlineno__ on 3.13+, else found above its
    first method) down to the end of its indented body."""
    first = reflect.type_dict(cls).get("__firstlineno__")
    starts = [span(c) for c in codes]
    last = max([s[1] for s in starts] or [0])
    if type(first) is not int:
        first = _class_line(cls, min([s[0] for s in starts] or [len(text.lines) if text else 0]), text)
    if text is not None and first:
        last = max(last, _block_end(text.lines, first))
    return first, last


def _class_line(cls, below, text):
    if text is None:
        return below
    name = reflect.type_simple_name(cls)
    for n in range(min(below, len(text.lines)), 0, -1):
        stripped = text.lines[n - 1].lstrip()
        if stripped.startswith("class " + name) and stripped[6 + len(name):][:1] in ("(", ":", " "):
            while n > 1 and text.lines[n - 2].lstrip().startswith("@"):
                n -= 1
            return n
    return below


def _block_end(lines, first):
    """The last line of the indented block whose header is at line `first` (decorators skipped)."""
    n = first
    while n <= len(lines) and lines[n - 1].lstrip().startswith("@"):
        n += 1
    indent = _indent(lines[n - 1]) if n <= len(lines) else 0
    last = n
    for k in range(n + 1, len(lines) + 1):
        line = lines[k - 1]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if _indent(line) <= indent:
            break
        last = k
    return last


def _indent(line):
    return len(line) - len(line.lstrip())


# ---- what is shown ------------------------------------------------------------------------------
def show(item, texts):
    if item.kind == "class":
        return show_class(item, texts)
    code = item.code
    filename = code.co_filename
    candidates = texts.of(filename, item.module)
    text, current, why = match(code, item.path, candidates)
    out = {"type": "source", "name": item.name, "kind": item.kind, "file": filename,
           "qualname": _qualname(item)}
    if text is not None:
        first, last = span(code)
        out.update(_lines(text, first, last), stale=False, source_from=text.origin)
    else:
        out.update(_unmatched(code, candidates, current, why))
    out.update(_origin(item, code))
    return out


def _qualname(item):
    func = item.func
    q = getattr(item.code, "co_qualname", None) if item.code is not None else None
    if func is not None and type(func.__qualname__) is str:
        q = func.__qualname__
    return q if type(q) is str else item.path


def _lines(text, first, last):
    last = min(last, len(text.lines), first + MAX_LINES - 1)
    return {"first_line": first, "last_line": last, "lines": text.lines[first - 1:last]}


def _unmatched(code, candidates, current, why):
    """A code no text matches: stale (a file exists and differs) or from a string (no file)."""
    disk = [t for t in candidates if t.origin == "file"]
    out = {"stale": bool(disk), "loaded": loaded_view(code)}
    if disk:
        out["stale_reason"] = why
        out["source_from"] = None
        if current is not None:      # what the file holds for it now
            first, last = span(current)
            out["now"] = _lines(disk[0], first, last)
        first, last = span(code)
        out["first_line"], out["last_line"], out["lines"] = first, last, []
    else:
        out["first_line"], out["last_line"], out["lines"] = code.co_firstlineno, None, []
        out["source_from"] = None
    return out


def _origin(item, code):
    """Where code with no file came from: its co_filename and the module whose globals it has."""
    filename = code.co_filename
    if os.path.isabs(filename) and os.path.exists(filename):
        return {}
    g = item.func.__globals__ if item.func is not None else (
        reflect.module_dict(item.module) if item.module is not None else {})
    defined_in, where = g.get("__name__"), g.get("__file__")
    reached = reflect.module_dict(item.module).get("__name__") if item.module is not None else None
    return {"defined_from_string": True,
            "origin": {"co_filename": filename,
                       "module": defined_in if type(defined_in) is str else None,
                       "module_file": where if type(where) is str else None,
                       "reached_from": reached if type(reached) is str else None}}


def loaded_view(code):
    """What the loaded code shows of itself: its bytecode with line numbers, constants, names."""
    lines = sorted(code_lines(code))
    return {"first_line": code.co_firstlineno, "code_lines": lines[:MAX_LINES],
            "disassembly": disassemble(code), "consts": [_const_text(c) for c in code.co_consts][:200],
            "names": list(code.co_names)[:500], "varnames": list(code.co_varnames)[:500]}


def _const_text(value):
    if type(value) is _CODE:
        return "<code %s, line %d>" % (value.co_name, value.co_firstlineno)
    if _plain_const(value):
        text = repr(value)
        return text if len(text) <= 200 else text[:200] + "..."
    return "<%s object>" % reflect.type_name(type(value))


def _plain_const(value):
    kind = type(value)
    if kind is tuple or kind is frozenset:
        return all(_plain_const(v) for v in value)
    return kind in _PLAIN or kind is _CODE


def disassemble(code):
    """dis of the code (nested code too); refused when a constant is not a compiler-made value
    (its repr could run the target's code)."""
    if not _plain_const(code.co_consts) or not all(
            _plain_const(c.co_consts) for c in _nested(code)):
        return ["(not disassembled: a constant is an object of the target's, whose repr would run its code)"]
    import dis
    import io
    buf = io.StringIO()
    dis.dis(code, file=buf)
    lines = buf.getvalue().splitlines()
    return lines[:MAX_DIS_LINES] + (["... %d more lines" % (len(lines) - MAX_DIS_LINES)]
                                    if len(lines) > MAX_DIS_LINES else [])


def _nested(code):
    for c in code.co_consts:
        if type(c) is _CODE:
            yield c
            for d in _nested(c):
                yield d


def show_class(item, texts):
    cls = item.cls
    members = _methods(cls, item.path)
    codes = [code for _, code in members]
    filename = codes[0].co_filename if codes else _module_file(item.module)
    candidates = texts.of(filename, item.module) if filename else []
    stale_members, text = [], None
    for path, code in members:
        found, current, why = match(code, path, candidates)
        if found is None:
            stale_members.append({"name": path, "reason": why, "loaded": loaded_view(code)})
        elif text is None:
            text = found
    if text is None and candidates and not stale_members:
        text = candidates[0]
    out = {"type": "source", "name": item.name, "kind": "class", "file": filename,
           "qualname": reflect.type_name(cls), "methods": len(codes)}
    disk = [t for t in candidates if t.origin == "file"]
    shown_from = text if text is not None and not stale_members else (disk[0] if disk else text)
    if shown_from is not None:
        first, last = class_span(cls, codes, shown_from)
        out.update(_lines(shown_from, first, last))
    else:
        out.update(first_line=reflect.type_dict(cls).get("__firstlineno__"), last_line=None, lines=[])
    out["stale"] = bool(stale_members and disk)
    out["source_from"] = None if stale_members else (text.origin if text is not None else None)
    if stale_members:
        out["stale_members"] = stale_members
        out["stale_reason"] = "%d of its %d methods differ from the file" % (len(stale_members), len(codes))
    return out


def _methods(cls, path, depth=0):
    """(path, code) of the functions of a class and of the classes nested in it."""
    out = []
    own = reflect.type_name(cls)
    for name, value in list(reflect.type_dict(cls).items()):
        if type(name) is not str:
            continue
        if reflect.is_class(value) and depth < 5 and reflect.type_name(value) == own + "." + name:
            out.extend(_methods(value, path + "." + name, depth + 1))
            continue
        code = function_code(value)
        qual = _qual(value, code).replace("<locals>.", "") if code is not None else ""
        if qual.startswith(path + "."):     # not a function assigned in from elsewhere
            out.append((qual, code))
    return out


def _qual(value, code):
    """A function's qualified name (its code's on 3.11+, the function's before)."""
    q = getattr(code, "co_qualname", None)
    if type(q) is not str:
        func = _function(value)
        q = func.__qualname__ if func is not None else ""
    return q if type(q) is str else ""


def _module_file(module):
    f = reflect.module_dict(module).get("__file__") if module is not None else None
    return f if type(f) is str else None
