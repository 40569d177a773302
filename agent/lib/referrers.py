# peeka agent library "referrers": the chains of references that keep an object alive, from a
# root (a module global, a class attribute, a thread's frame local, sys.modules, a C module's
# state) down to it, shortest first — objgraph's find_backref_chain without its risks.
#
# How: one snapshot of the collector's objects (gc.get_objects()), then a breadth-first walk
# backwards, one level per pass over the snapshot. A pass asks the C traversal of a whole chunk
# at once (gc.get_referents(*chunk)) whether it reaches the level's objects, compared by id, and
# only looks object by object inside the few chunks that do; between chunks the GIL is released.
# No code of the target runs: objects are compared by id (never ==, `in` or hash), containers
# are read through the builtin types' own methods, names through reflect. Everything the walk
# builds is made after the snapshot, so it is not in it; our own frames and the caller's
# containers (`exclude`) are left out by id; all of it is dropped when chains() returns.
import gc
import sys
import time
import types

REQUIRES = ("reflect", "real")

CHUNK = 5000             # objects whose referents are asked in one C call (GIL held)
SLICE = 250              # inside a chunk that hits, the size of the pieces looked at again
MAX_FRAMES = 200         # frames per thread read for their locals
CO_OPTIMIZED = 1         # a code flag: a function's frame (fast locals)

_CELL = type((lambda x: lambda: x)(0).__closure__[0])
_FUNCTION = types.FunctionType
_FRAME = types.FrameType
_METHOD = types.MethodType
_KEY_TYPES = (str, int)


class Budget(object):
    """The bounds of one or more walks: a time budget and a cancel event for them all, a cap on
    the objects each keeps (visited). Also times each stretch they kept the GIL: this thread's
    CPU time between two releases (on a GIL build a thread runs Python only while it holds it;
    wall time would also count the stretches other threads ran)."""

    def __init__(self, seconds=10.0, max_objects=100000, cancelled=None, sleep=None):
        self.seconds, self.max_objects, self.cancelled = seconds, max_objects, cancelled
        self.sleep = sleep or real.sleep
        self.started = time.perf_counter()
        self._since = time.thread_time()
        self.stopped = None            # None, or why every walk ends early (time, cancel)
        self.gil_s, self.gil_max_s, self.releases = 0.0, 0.0, 0
        self.passes = self.objects_scanned = 0

    def pause(self):
        """Between two chunks: counts the stretch, lets the target's threads run, and says
        whether the walk may go on."""
        self._count()
        self.releases += 1
        self.sleep(0)
        self._since = time.thread_time()
        if self.cancelled is not None and self.cancelled.is_set():
            self.stopped = self.stopped or "cancelled"
        elif time.perf_counter() - self.started > self.seconds:
            self.stopped = self.stopped or "time budget (%g s) reached" % self.seconds
        return self.stopped is None

    def release(self):
        """heap.tracked_objects's pauses (a scan for instances counts in the budget too)."""
        self.pause()

    def _count(self):
        held = time.thread_time() - self._since
        self.gil_s += held
        self.gil_max_s = max(self.gil_max_s, held)
        self._since = time.thread_time()

    def report(self):
        """The cost so far (the stretch since the last release included)."""
        self._count()
        return {"gil_ms": round(self.gil_s * 1000, 2), "gil_max_ms": round(self.gil_max_s * 1000, 2),
                "gil_releases": self.releases, "passes": self.passes,
                "objects_scanned": self.objects_scanned,
                "total_ms": round((time.perf_counter() - self.started) * 1000, 1)}


# ---- roots ----------------------------------------------------------------------------------

def _module_dicts():
    """id(module globals dict) -> module name, for every module in sys.modules."""
    found = {}
    for name, module in list(sys.modules.items()):
        if reflect.is_module(module) and type(name) is str:
            found[id(reflect.module_dict(module))] = name
    return found


def _named_slots(module_dicts, budget):
    """id(value) -> [(module, key) or (module, class key, attribute)] for every module global
    and every attribute of a class that is a module global: the roots most chains end at, known
    before any pass (a value found here ends its chain a level early). Made before the snapshot
    (its thousands of small objects would each make the collector's young generation, holding
    the snapshot list, be walked again), so it holds only strings, and a match is checked again
    against the dict (str keys: no target code in the lookups): named_root()."""
    index = {}
    for n, (d_id, module) in enumerate(list(module_dicts.items())):
        if n % 100 == 99:
            budget.pause()                     # a big application has thousands of modules
        d = _module_dict_by_name(module)
        if d is None or id(d) != d_id:
            continue
        for key, value in list(dict.items(d)):
            if type(key) is not str:
                continue
            index.setdefault(id(value), []).append((module, key))
            if reflect.is_class(value) and reflect.type_module(value) == module:
                cls_dict = _class_dict_of(value)
                for attr, held in (list(dict.items(cls_dict)) if cls_dict is not None else ()):
                    if type(attr) is str and attr[:2] != "__":
                        index.setdefault(id(held), []).append((module, key, attr))
    return index


def named_root(entry, obj):
    """(kind, name) of the root an entry of _named_slots names, if it still holds obj."""
    d = _module_dict_by_name(entry[0])
    held = dict.get(d, entry[1]) if d is not None else None
    if len(entry) == 2:
        return ("module global", "%s.%s" % entry) if held is obj else None
    cls_dict = _class_dict_of(held) if reflect.is_class(held) else None
    if cls_dict is not None and dict.get(cls_dict, entry[2]) is obj:
        return "class attribute", "%s.%s" % (reflect.qualified_name(held), entry[2])
    return None


def _module_dict_by_name(name):
    module = sys.modules.get(name)
    return reflect.module_dict(module) if reflect.is_module(module) else None


def _thread_frames(skip_idents, our_frames):
    """(frame ids -> description, local index) for the frames of every thread but ours: the
    index maps id(value) -> [(value, 'thread "t" frame f() local x')]. Locals are read through
    f_locals (3.13+: a view; before, the interpreter's own snapshot dict of the frame, as
    locals() or a debugger fills it)."""
    names = _thread_names(sys.modules.get("threading"))
    frames, index = {}, {}
    current = sys._current_frames()
    try:
        for ident, frame in list(current.items()):
            if ident in skip_idents or ident == real.get_ident():
                continue
            who = 'thread "%s"' % names.get(ident, ident)
            depth = 0
            while frame is not None and depth < MAX_FRAMES:
                if id(frame) not in our_frames:
                    where = "%s frame %s()" % (who, frame.f_code.co_name)
                    frames[id(frame)] = (frame, where)
                    if frame.f_code.co_flags & CO_OPTIMIZED:    # a function's (a module's locals are its globals)
                        _index_locals(index, frame, where)
                frame, depth = frame.f_back, depth + 1
    finally:
        current = frame = None      # our own frame in a dict of our locals would be a cycle
    return frames, index


def _index_locals(index, frame, where):
    try:
        pairs = list(frame.f_locals.items())
    except Exception:                          # a frame that cannot show its locals: no root there
        return
    for name, value in pairs:
        index.setdefault(id(value), []).append((value, "%s local %s" % (where, name)))


def _thread_names(threading):
    """ident -> name from threading's registry, read as stored (no property runs)."""
    if threading is None:
        return {}
    active = reflect.fields(threading).get("_active")
    names = {}
    for ident, thread in (list(dict.items(active)) if issubclass(type(active), dict) else []):
        name = reflect.fields(thread).get("_name")
        if type(name) is str:
            names[ident] = name
    return names


def _our_frames(skip_idents):
    """ids of the frames of our own threads (they hold what we look at in their locals)."""
    ids = set()
    current = sys._current_frames()
    try:
        for ident in list(skip_idents) + [real.get_ident()]:
            frame = current.get(ident)
            while frame is not None:
                ids.add(id(frame))
                frame = frame.f_back
    finally:
        current = frame = None      # our own frame in a dict of our locals would be a cycle
    return ids


def _class_dict_of(t):
    """The real dict behind a class's __dict__ mappingproxy."""
    proxy = reflect.type_dict(t)
    inner = gc.get_referents(proxy)
    return inner[0] if len(inner) == 1 and type(inner[0]) is dict else None


# ---- the walk -------------------------------------------------------------------------------

class _Search(object):
    """One snapshot, and one pass over it per level, for the walks from several objects at
    once; what they share: the roots known up front, the objects left out, the budget."""

    def __init__(self, snapshot, targets, modules, named, skip_idents, exclude, budget):
        self.budget = budget
        self.snapshot = snapshot               # taken first: what follows is not in it
        self.modules, self.named = modules, named
        self.skip = _our_frames(skip_idents)
        self.frames, self.locals_index = _thread_frames(skip_idents, self.skip)
        self.skip.update(id(o) for o in exclude)
        self.skip.update(self.frames)          # thread frames are roots, found by their locals
        self.walks = [_Walk(self, t) for t in targets]

    def run(self, max_depth, max_chains):
        self.budget.pause()                    # the snapshot was one long C call
        for walk in self.walks:
            walk.start()
        while self.budget.stopped is None:
            going = [w for w in self.walks if w.goes_on(max_depth, max_chains)]
            if not going:
                break
            for walk in going:
                walk.level()
            going = [w for w in going if len(w.roots) < max_chains]    # roots found by level()
            if not going:
                break
            wanted = {}                        # id -> (object, the walks whose frontier has it)
            for walk in going:
                for o in walk.frontier:
                    wanted.setdefault(id(o), (o, []))[1].append(walk)
            self._pass(wanted, going, max_chains)
            for walk in going:
                walk.frontier, walk.found = walk.found, []

    def _pass(self, wanted, going, max_chains):
        """The objects of the snapshot that refer to wanted ones, each handed to the walks that
        want what it refers to."""
        snap, skip, budget = self.snapshot, self.skip, self.budget
        budget.passes += 1
        for start in range(0, len(snap), CHUNK):
            chunk = snap[start:start + CHUNK]
            if self._wanted_in(gc.get_referents(*chunk), wanted):
                for piece_start in range(0, len(chunk), SLICE):
                    piece = chunk[piece_start:piece_start + SLICE]
                    if self._wanted_in(gc.get_referents(*piece), wanted):
                        for o in piece:
                            if id(o) not in skip:
                                for child in self._wanted_in(gc.get_referents(o), wanted):
                                    for walk in wanted[id(child)][1]:
                                        walk.edge(o, child)
                    del piece
            budget.objects_scanned += len(chunk)
            del chunk
            if not budget.pause() or all(len(w.roots) >= max_chains for w in going):
                break

    def _wanted_in(self, refs, wanted):
        """Those of refs that are wanted (by id), looked for a slice at a time: a big
        container's referents are many, and the GIL is released between slices."""
        hits = []
        for i in range(0, len(refs), CHUNK * 4):
            part = refs[i:i + CHUNK * 4]
            if not wanted.keys().isdisjoint(map(id, part)):
                hits.extend(r for r in part if id(r) in wanted)
            if len(refs) > CHUNK * 4:
                self.budget.pause()
        return hits

    def drop(self):
        for walk in self.walks:
            walk.drop()
        self.snapshot = self.walks = self.frames = self.locals_index = self.named = None


class _Walk(object):
    """The way back from one object: for every object met, the one it leads to (one way on per
    object, the first found), and the roots reached."""

    def __init__(self, search, target):
        self.search = search
        self.target = target
        self.next_hop = {id(target): None}     # id(obj) -> the object it refers to, toward target
        self.kept = {id(target): target}       # pins every object we name by id
        self.roots = []                        # (kind, name, first object)
        self.root_keys = set()
        self.frontier, self.found = [target], []
        self.depth = 0
        self.stopped = None                    # this walk's own bound reached (depth, cap)

    def start(self):
        self._root_of_node(self.target)

    def goes_on(self, max_depth, max_chains):
        if not self.frontier or len(self.roots) >= max_chains or self.stopped:
            return False
        if self.depth >= max_depth:
            self.stopped = "depth %d reached" % max_depth
            return False
        return True

    def level(self):
        """A level begins: the frontier's objects held by a thread's frame, a module global or
        a class attribute are roots (found without a pass)."""
        self.depth += 1
        for obj in self.frontier:
            for value, where in self.search.locals_index.get(id(obj), ()):
                if value is obj:
                    self._add_root("thread frame", where, obj)
            for entry in self.search.named.get(id(obj), ()):
                root = named_root(entry, obj)
                if root is not None:
                    self._add_root(root[0], root[1], obj)

    def why_stopped(self):
        return self.stopped or self.search.budget.stopped

    def _add_root(self, kind, name, first):
        key = (kind, name)
        if key not in self.root_keys:
            self.root_keys.add(key)
            self.roots.append((kind, name, first))

    def _root_of_node(self, obj):
        """An object that is itself a root: a module (kept by sys.modules)."""
        if reflect.is_module(obj):
            name = reflect.module_dict(obj).get("__name__")
            self._add_root("sys.modules", "sys.modules[%s]" % _key_text(name), obj)

    def edge(self, parent, child):
        """parent refers to child, of this walk's frontier: a root starts a chain; else the
        first such reference is the way on (below the object cap, which ends the walk after
        this pass)."""
        if self._root_of_edge(parent, child):
            return
        pid = id(parent)
        if pid in self.next_hop:
            return
        if len(self.kept) >= self.search.budget.max_objects:
            self.stopped = "object cap (%d) reached" % self.search.budget.max_objects
            return
        self.next_hop[pid] = child
        self.kept[pid] = parent
        self.found.append(parent)

    def _root_of_edge(self, parent, child):
        """Whether parent -> child starts a chain: a module's globals, a class's dict, or a
        module holding something other than its dict (a C module's state). The target itself
        is no root of its own (its class dict or globals lead back to it in a cycle)."""
        if parent is self.target:
            return True
        module = self.search.modules.get(id(parent))
        if module is not None and type(parent) is dict:
            self._add_root("module global", module + _dict_step(parent, child, "."), child)
            return True
        if reflect.is_class(parent) and child is _class_dict_of(parent):
            after = self.next_hop.get(id(child))
            name = reflect.qualified_name(parent)
            if after is None:                  # the target is the class's dict itself
                self._add_root("class attribute", name + ".__dict__", child)
            else:
                self._add_root("class attribute", name + _dict_step(child, after, "."), after)
            return True
        if reflect.is_module(parent) and child is not reflect.module_dict(parent):
            name = reflect.module_dict(parent).get("__name__")
            self._add_root("module state", "module %s (its C state)" % name, child)
            return True
        return False

    def chains(self, max_chains):
        out = []
        for kind, name, first in self.roots:
            hops = [first]
            while True:
                nxt = self.next_hop.get(id(hops[-1]))
                if nxt is None or len(hops) > 10000:
                    break
                hops.append(nxt)
            out.append(_describe_chain(kind, name, hops))
        out.sort(key=lambda c: c["length"])
        texts = set()
        return [c for c in out if not (c["text"] in texts or texts.add(c["text"]))][:max_chains]

    def result(self, max_chains):
        stopped = self.why_stopped()
        return {"chains": self.chains(max_chains), "depth": self.depth, "partial": stopped is not None,
                "stopped": stopped, "visited": len(self.kept)}

    def drop(self):
        self.search = self.target = self.kept = self.next_hop = None
        self.frontier = self.found = self.roots = None


# ---- naming the steps -----------------------------------------------------------------------

def _key_text(key):
    """A dict key as text: the repr of a str or int only (their reprs are the builtins')."""
    if type(key) is str:
        return repr(key if len(key) <= 60 else key[:57] + "...")
    if type(key) is int and int.bit_length(key) <= 64:
        return repr(key)
    return "<%s key>" % reflect.qualified_name(type(key))


def _dict_step(d, child, attr_prefix=None):
    """How a dict refers to child: [key] (or .key for a namespace: attr_prefix), (key) when
    child is a key."""
    for k, v in list(dict.items(d)):          # one C call: a target thread may change d
        if v is child:
            if attr_prefix is not None and type(k) is str and k.isidentifier():
                return attr_prefix + k
            return "[%s]" % _key_text(k)
        if k is child:
            return " (a key)"
    return ""


def _sequence_step(seq, base, child):
    for i, v in enumerate(list(base.__iter__(seq))):    # one C call: a target thread may change it
        if v is child:
            return "[%d]" % i
    return ""


def _slot_step(obj, child):
    for k in reflect.type_mro(type(obj)):
        for name, member in list(reflect.type_dict(k).items()):
            if type(member) is reflect.MEMBER:
                try:
                    if member.__get__(obj, type(obj)) is child:
                        return "." + name
                except AttributeError:
                    pass
    return None


def _closure_step(fn, child):
    """fn's closure tuple or one of its cells: the free variable's name."""
    cells = fn.__closure__ or ()
    names = fn.__code__.co_freevars
    for i, cell in enumerate(cells):
        if cell is child and i < len(names):
            return names[i]
    return None


def _step(obj, child, after):
    """(shown as, step to child, hops to skip) for obj -> child in a chain (after: the hop after
    child, for steps that go through an inner object such as an instance's __dict__; None when
    child ends the chain, which then shows the inner object itself)."""
    t = type(obj)
    if t is _FUNCTION:
        return _function_step(obj, child, after)
    shown = reflect.qualified_name(t)
    if t is _CELL:
        return "cell", "", 0
    for base in (dict, list, tuple):
        if issubclass(t, base):
            if base is dict:
                return shown, _dict_step(obj, child), 0
            return shown, _sequence_step(obj, base, child), 0
    if issubclass(t, (set, frozenset)):
        return shown, "{...}", 0
    if t is _METHOD:
        return shown, ".__self__" if child is obj.__self__ else ".__func__", 0
    if reflect.is_class(obj):
        return reflect.qualified_name(obj), "", 0
    if child is t:
        return shown, ".__class__", 0
    d = reflect.instance_dict(obj, t)
    if d is not None and child is d:
        return (shown, ".__dict__", 0) if after is None else (shown, _dict_step(child, after, "."), 1)
    if d is not None:                          # 3.11+: values stored in the object itself
        via = _dict_step(d, child, ".")
        if via:
            return shown, via, 0
    slot = _slot_step(obj, child)
    return shown, slot or "", 0


def _function_step(fn, child, after):
    """A function's step: through its closure to a free variable's cell content, its defaults,
    its __dict__ or its globals."""
    name = fn.__qualname__ + "()"
    if child is fn.__closure__:
        var = _closure_step(fn, after) if after is not None else None
        if var is None:
            return name, ".__closure__", 0
        return "<closure of %s>" % fn.__qualname__, "." + var, 2
    # __dict__ last and only for a dict: reading it makes an empty one when the function has none
    for held, label in ((fn.__defaults__, ".__defaults__"), (fn.__globals__, ".__globals__"),
                        (fn.__dict__ if type(child) is dict else None, "")):
        if held is not None and child is held:
            if after is None:
                return name, label or ".__dict__", 0
            if type(held) is tuple:
                return name, label + _sequence_step(held, tuple, after), 1
            return name, label + _dict_step(held, after, None if label else "."), 1
    return name, "", 0


def _safe_step(obj, child, after):
    """_step, or the type alone if naming the step failed (an object that changed meanwhile)."""
    try:
        return _step(obj, child, after)
    except Exception:
        return reflect.qualified_name(type(obj)), "", 0


def _describe_chain(kind, name, hops):
    """A chain as data and text: `name` is the root's slot, which holds hops[0]; each next hop
    is shown as its type and the step to the one after it."""
    steps = []
    i = 0
    while i < len(hops) - 1:
        after = hops[i + 2] if i + 2 < len(hops) else None
        shown, via, skip = _safe_step(hops[i], hops[i + 1], after)
        steps.append({"type": shown, "via": via, "id": id(hops[i])})
        i += 1 + skip
    target = hops[-1]
    steps.append({"type": _shown(target), "via": "", "id": id(target)})
    parts = [name]
    first = steps[0]
    if len(steps) > 1 and type(hops[0]) in (dict, list, tuple):
        parts[0] += first["via"]          # the root's own container: myapp.cache._store['k']
        steps_shown = steps[1:]
    else:
        steps_shown = steps
    parts.extend(s["type"] + s["via"] for s in steps_shown)
    return {"root": {"kind": kind, "name": name}, "steps": steps, "length": len(steps),
            "text": " → ".join(parts)}


def _shown(obj):
    """The chain's last object: its type, or its own name for a function, class or module."""
    if type(obj) is _FUNCTION:
        return obj.__qualname__ + "()"
    if reflect.is_class(obj):
        return "class " + reflect.qualified_name(obj)
    if reflect.is_module(obj):
        return "module %s" % reflect.module_dict(obj).get("__name__")
    return reflect.qualified_name(type(obj))


# ---- the entry point ------------------------------------------------------------------------

def chains(obj, max_depth=8, max_chains=5, budget=None, skip_idents=(), exclude=()):
    """The chains of references that keep obj alive, shortest first: a dict with `chains` (each
    {root: {kind, name}, steps: [{type, via, id}], length, text}), `depth` reached, `partial` and
    `stopped` (why it ended early: depth, time budget, object cap, cancelled). The cost is in
    budget.report(). skip_idents: our own threads (their frames are not roots); exclude:
    containers of the caller that hold obj (left out by id). Nothing it builds outlives it."""
    return chains_of([obj], max_depth, max_chains, budget, skip_idents, exclude)[0]


def chains_of(objs, max_depth=8, max_chains=5, budget=None, skip_idents=(), exclude=()):
    """chains() for several objects at once, in their order: one snapshot, and one pass over
    it per level for them all (the cost of one search, not one per object)."""
    budget = budget or Budget()
    modules = _module_dicts()
    named = _named_slots(modules, budget)
    snapshot = gc.get_objects()
    search = _Search(snapshot, objs, modules, named, set(skip_idents), exclude, budget)
    del snapshot
    try:
        search.run(max_depth, max_chains)
        return [walk.result(max_chains) for walk in search.walks]
    finally:
        search.drop()
