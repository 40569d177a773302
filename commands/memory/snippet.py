# memory: the process's memory at a glance (RSS and peak, collector counters, the
# object types with most instances and most bytes); `--trace N`: tracemalloc for N seconds, then
# the top allocation sites and what grew (tracemalloc put back as it was: stopped again if peeka
# started it); `--growth D`: two censuses of the tracked objects by type D apart and what grew
# (no tracemalloc; with `trace`, the allocation sites of that window too); `--by-module`: the
# objects by the module defining their type, and the biggest containers with their owner;
# `--gc` / `--malloc-trim`: collect, give freed memory back to the OS, RSS before and after.
import gc
import os
import sys
import time

REQUIRES = ("errors", "reflect")


def _proc_status():
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "VmSize"):
                    out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def _gc_info():
    stats = gc.get_stats() if hasattr(gc, "get_stats") else []
    return {"enabled": gc.isenabled(), "counts": list(gc.get_count()), "thresholds": list(gc.get_threshold()),
            "generations": [dict(s, generation=i) for i, s in enumerate(stats)]}


def object_types(ctx, limit):
    """(objects walked, by count, by shallow size, what was left out as peeka's) over every
    object the collector tracks."""
    heap = ctx.agent.lib("heap")
    census = heap.Census(ctx.cancelled, heap.Pauses()).take()
    counts, sizes = census.counts, census.sizes
    name = lambda k: reflect.qualified_name(census.types[k])   # no attribute lookup on the classes
    by_count = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    by_size = sorted(sizes.items(), key=lambda kv: -kv[1])[:limit]
    return census.objects, ([{"type": name(k), "count": n, "size_bytes": sizes[k]} for k, n in by_count],
                            [{"type": name(k), "size_bytes": n, "count": counts[k]} for k, n in by_size]), census.ours.report()


def overview(ctx, limit):
    status = _proc_status()
    tracked, (by_count, by_size), ours = object_types(ctx, limit)
    tm = sys.modules.get("tracemalloc")     # only reported if the target already uses it
    tracing = bool(tm and tm.is_tracing())
    info = dict(ours, action="overview", pid=os.getpid(), rss_bytes=status.get("VmRSS"),
                peak_rss_bytes=status.get("VmHWM"), vm_bytes=status.get("VmSize"),
                gc=dict(_gc_info(), tracked_objects=tracked), tracemalloc={"tracing": tracing},
                top_by_count=by_count, top_by_size=by_size, limit=limit)
    if tracing:
        current, peak = tm.get_traced_memory()
        info["tracemalloc"].update(current_bytes=current, peak_bytes=peak)
    return info


_tracing = []  # [True] while a trace of ours runs tracemalloc


def after_fork_in_child():
    """A child forked during `memory --trace` must not pay for tracemalloc its whole life."""
    if _tracing:
        del _tracing[:]
        sys.modules["tracemalloc"].stop()


class _Tracemalloc(object):
    """tracemalloc for one window: started if it was off (stopped again by close()), left as it
    was if the target runs it. Sites are flattened into two dicts of str -> int at once, so no
    snapshot object outlives the call that took it (a census would count its thousands of
    tuples as growth)."""

    def __init__(self, nframe, session_dir):
        self.loaded = set(sys.modules)
        import tracemalloc
        self.tm = tracemalloc
        self.was_tracing = tracemalloc.is_tracing()
        self.ours = (tracemalloc.Filter(False, "<peeka*"), tracemalloc.Filter(False, tracemalloc.__file__))
        if session_dir:             # the agent's own code (boot.py) runs from its session folder
            self.ours += (tracemalloc.Filter(False, os.path.join(session_dir, "*")),)
        self.snapshot_ms = 0.0
        if not self.was_tracing:
            tracemalloc.start(nframe)
            _tracing.append(True)

    def sites(self):
        """({'file:line': bytes}, {'file:line': count}) of the live traced blocks, peeka's left out."""
        started = time.perf_counter()
        stats = self.tm.take_snapshot().filter_traces(self.ours).statistics("lineno")
        sizes, counts = {}, {}
        for s in stats:
            key = "%s:%d" % (s.traceback[0].filename, s.traceback[0].lineno)
            sizes[key], counts[key] = s.size, s.count
        self.snapshot_ms += (time.perf_counter() - started) * 1000
        return sizes, counts

    def close(self):
        if not self.was_tracing:
            del _tracing[:]
            self.tm.stop()      # as it was: frees its memory too

    def own_objects(self):
        """What this window made before the census that follows it: to take back out of it."""
        return (self, self.loaded, self.ours) + self.ours

    def describe(self):
        current, peak = self.tm.get_traced_memory()
        return {"traced_bytes": current, "traced_peak_bytes": peak,
                "tracemalloc_was_running": self.was_tracing, "modules_imported": sorted(set(sys.modules) - self.loaded),
                "snapshot_ms": round(self.snapshot_ms, 1),
                "tracemalloc_after": "left running (it was before)" if self.was_tracing else "stopped again"}


def _site(key):
    file, _, line = key.rpartition(":")
    return {"file": file, "line": int(line)}


def _top_sites(sites, limit):
    sizes, counts = sites
    ranked = sorted(sizes.items(), key=lambda kv: -kv[1])[:limit]
    return [dict(_site(k), size_bytes=n, count=counts[k]) for k, n in ranked]


def _site_growth(first, last, limit):
    """The sites whose live traced bytes grew from `first` to `last`, most first."""
    grew = [(n - first[0].get(k, 0), k) for k, n in last[0].items() if n > first[0].get(k, 0)]
    grew.sort(key=lambda d: -d[0])
    return [dict(_site(k), size_diff_bytes=d, size_bytes=last[0][k], count_diff=last[1][k] - first[1].get(k, 0))
            for d, k in grew[:limit]]


def trace(ctx, seconds, limit, nframe):
    tracing = _Tracemalloc(nframe, getattr(ctx.agent, "session_dir", None))
    try:
        first = tracing.sites()
        started = time.time()
        ctx.cancelled.wait(seconds)
        last = tracing.sites()
        elapsed = time.time() - started
        traced = tracing.describe()
    finally:
        tracing.close()
    return dict(traced, action="trace", seconds=round(elapsed, 3), interrupted=ctx.cancelled.is_set(),
                top=_top_sites(last, limit), growth=_site_growth(first, last, limit))


UNTRACKED = ("counted: the objects the garbage collector tracks (containers and instances); atomic "
             "objects (str, bytes, int, float), dicts it untracked and tuples holding only such values "
             "(which it untracks when it next looks) are not counted: their bytes show in RSS and, with "
             "--trace, at their allocation sites; nor are peeka's own objects")


def _per(diff, seconds, unit):
    return round(diff * unit / seconds, 1) if seconds > 0 else None


def _type_growth(before, after, seconds, limit):
    """(grew, shrank): the types whose count or bytes changed between the censuses, most bytes first."""
    rows = []
    for k, t in after.types.items():
        dn, db = after.counts[k] - before.counts.get(k, 0), after.sizes[k] - before.sizes.get(k, 0)
        if dn or db:
            rows.append((db, dn, k, t))
    for k, t in before.types.items():
        if k not in after.types:
            rows.append((-before.sizes[k], -before.counts[k], k, t))
    rows.sort(key=lambda r: (-r[0], -r[1]))

    def row(r):
        db, dn, k, t = r
        return {"type": reflect.qualified_name(t), "count": after.counts.get(k, 0), "count_diff": dn,
                "bytes": after.sizes.get(k, 0), "bytes_diff": db,
                "count_per_s": _per(dn, seconds, 1), "count_per_min": _per(dn, seconds, 60),
                "bytes_per_s": _per(db, seconds, 1), "bytes_per_min": _per(db, seconds, 60)}
    grew = [row(r) for r in rows if r[0] > 0 or (r[0] == 0 and r[1] > 0)][:limit]
    shrank = [row(r) for r in reversed(rows) if r[0] < 0 or (r[0] == 0 and r[1] < 0)][:limit]
    return grew, shrank


def growth(ctx, seconds, limit, nframe):
    """Two censuses `seconds` apart and the difference; with nframe, tracemalloc runs over the
    window (only if it was off) and the sites that grew come too."""
    heap = ctx.agent.lib("heap")
    started, pauses = time.perf_counter(), heap.Pauses()
    before = heap.Census(ctx.cancelled, pauses).take()
    tracing = _Tracemalloc(nframe, getattr(ctx.agent, "session_dir", None)) if nframe else None
    try:
        first = tracing.sites() if tracing else None
        ctx.cancelled.wait(max(0.0, seconds - (time.perf_counter() - before.taken_at)))
        if ctx.cancelled.is_set():
            return {"action": "growth", "interrupted": True}
        last = tracing.sites() if tracing else None
        traced = tracing.describe() if tracing else None
    finally:
        if tracing:
            tracing.close()     # before the second walk: tracing would slow it several times
    # what our own import of tracemalloc made is ours too, not the target's growth
    imported = set(sys.modules) - tracing.loaded if tracing else ()
    after = heap.Census(ctx.cancelled, pauses, ours=heap.Ours(imported)).take()
    after.discount(before.own_containers() + (before,) +
                   (first + last + tracing.own_objects() + (traced, traced["modules_imported"], imported)
                    if tracing else ()))
    window = after.taken_at - before.taken_at
    grew, shrank = _type_growth(before, after, window, limit)
    result = dict(pauses.report(), **after.ours.report())
    result.update(action="growth", seconds=round(window, 3), interrupted=False,
                  before={"objects": before.objects, "bytes": before.bytes},
                  after={"objects": after.objects, "bytes": after.bytes},
                  grew=grew, shrank=shrank, limit=limit, sizes=heap.SIZING, counted=UNTRACKED,
                  walk_ms=[before.walk_ms, after.walk_ms],
                  total_ms=round((time.perf_counter() - started) * 1000, 1))
    if tracing:
        result["trace"] = dict(traced, top=_top_sites(last, limit), growth=_site_growth(first, last, limit))
    return result


class _Biggest(object):
    """The n biggest objects offered (by shallow size), kept in a short list sorted biggest first."""

    def __init__(self, n):
        self.n, self.items, self.floor = n, [], -1

    def offer(self, obj, size):
        if size <= self.floor:
            return
        items = self.items
        i = len(items)
        while i and items[i - 1][0] < size:
            i -= 1
        items.insert(i, (size, obj))
        if len(items) > self.n:
            items.pop()
        if len(items) == self.n:
            self.floor = items[-1][0]


OWNER_BUDGET = 500000     # dictionary entries looked at, at most, to name the containers' owners


class _Owners(object):
    """Names the one step that holds each wanted object: a module global ('module.NAME'), an
    attribute of a class defined in that module ('module.Class.attr') or of a global instance
    ('module.NAME.attr'). Bounded by OWNER_BUDGET entries, the GIL released every CHUNK;
    objects found nowhere are left out. No code of the target runs (dicts read as stored)."""

    CHUNK = 20000

    def __init__(self, pauses, objs):
        self.pauses, self.wanted, self.found = pauses, set(id(o) for o in objs), {}
        self.seen, self.next_release = 0, self.CHUNK

    def search(self):
        self.pauses.start()
        for name, module in list(sys.modules.items()):
            if len(self.found) == len(self.wanted) or self.seen > OWNER_BUDGET:
                break
            if type(name) is str and reflect.is_module(module):
                self._module(name, reflect.module_dict(module))
        self.pauses.stop()
        return self.found

    def _module(self, name, g):
        self._note(g, "the globals of module " + name)
        entries = list(g.items())
        self._look(entries, name + ".")
        for key, value in entries:
            if type(key) is not str:
                continue
            if reflect.is_class(value):
                attrs = reflect.type_dict(value) if reflect.type_module(value) == name else None
                if attrs is not None:     # a class defined there (None: a type with no dict)
                    self._look(list(attrs.items()), "%s.%s." % (name, key))
            elif not reflect.is_module(value) and not issubclass(type(value), reflect.FUNCTIONS):
                self._instance(value, "%s.%s" % (name, key))

    def _instance(self, value, where):
        """A global instance's attributes, read through its __dict__ only when it holds a wanted
        object: on 3.11+ reading __dict__ makes one (the values live in the object), a change
        to the target's heap. gc.get_referents sees the values (or the dict, before 3.11)
        through its type's C traverse, without making it."""
        refs = gc.get_referents(value)
        if not any(id(r) in self.wanted for r in refs) and not any(
                type(r) is dict and any(id(v) in self.wanted for v in dict.values(r)) for r in refs):
            return
        fields = reflect.instance_dict(value, type(value))
        if fields is not None:
            self._note(fields, where + ".__dict__")
            self._look(list(fields.items()), where + ".")

    def _note(self, obj, where):
        if id(obj) in self.wanted and id(obj) not in self.found:
            self.found[id(obj)] = where

    def _look(self, items, prefix):
        for key, value in items:
            if type(key) is str:
                self._note(value, prefix + key)
        self.seen += len(items)
        if self.seen >= self.next_release:
            self.next_release = self.seen + self.CHUNK
            self.pauses.release()


_CONTAINERS = (dict, list, set)


def _container(obj, size, where):
    t = type(obj)
    base = reflect.builtin_base(t, dict((id(b), b) for b in _CONTAINERS))
    return {"type": reflect.qualified_name(t), "len": base.__len__(obj), "bytes": size,
            "referenced_from": where.get(id(obj))}


def by_module(ctx, limit):
    """The tracked objects grouped by the module defining their type; the biggest containers
    and what holds each."""
    heap = ctx.agent.lib("heap")
    started, pauses, biggest = time.perf_counter(), heap.Pauses(), _Biggest(limit)
    census = heap.Census(ctx.cancelled, pauses, biggest.offer, _CONTAINERS, heap.Ours(keep=True)).take()
    rows, module_count = _module_rows(census, limit)
    containers, cost = _placed(ctx, pauses, biggest, census.ours)
    census.ours.done()
    gil = pauses.report()
    if cost is not None:
        gil = {"gil_ms": round(gil["gil_ms"] + cost["gil_ms"], 2), "gil_releases": gil["gil_releases"] + cost["gil_releases"],
               "gil_max_ms": max(gil["gil_max_ms"], cost["gil_max_ms"])}
    result = dict(gil, **census.ours.report())
    result.update(action="by_module", modules=rows, module_count=module_count,
                  objects=census.objects, bytes=census.bytes, containers=containers, limit=limit,
                  owners=OWNERS, owner_chains_cost=cost, sizes=heap.SIZING, counted=UNTRACKED,
                  total_ms=round((time.perf_counter() - started) * 1000, 1))
    return result


def _module_rows(census, limit):
    """(the `limit` modules whose types' objects take most bytes, how many modules in all)."""
    modules = {}
    for k, t in census.types.items():
        module = reflect.type_module(t)
        module = module if type(module) is str else "?"
        row = modules.get(module)
        if row is None:
            row = modules[module] = {"module": module, "count": 0, "bytes": 0, "types": 0, "_top": []}
        row["count"] += census.counts[k]
        row["bytes"] += census.sizes[k]
        row["types"] += 1
        row["_top"].append((census.sizes[k], reflect.type_name(t)))
    rows = sorted(modules.values(), key=lambda r: -r["bytes"])[:limit]
    for row in rows:
        top = row.pop("_top")
        top.sort(key=lambda st: -st[0])
        row["top_types"] = [n if type(n) is str else "?" for _, n in top[:3]]
    return rows, len(modules)


CHAIN_SECONDS = 3.0
OWNERS = ("one step up first (a module global, a class attribute, a global instance's attribute); else "
          "the shortest chain from a root (agent library referrers: a thread's local, a longer path), "
          "%g s for them all" % CHAIN_SECONDS)


def _placed(ctx, pauses, biggest, ours):
    """The biggest containers described, each with what holds it; the chains' cost (or None).
    Every list of ours that holds them is emptied before returning; the chains go through none
    of peeka's objects (`ours`)."""
    objs = [o for _, o in biggest.items]
    where = _Owners(pauses, objs).search()
    unplaced = [o for o in objs if id(o) not in where]
    cost = None
    if unplaced:
        chained, cost = _chains(ctx, unplaced, [biggest.items, objs, unplaced] + biggest.items + ours.objects)
        where.update(chained)
    containers = [_container(o, size, where) for size, o in biggest.items]
    del biggest.items[:], objs[:], unplaced[:]
    return containers, cost


def _chains(ctx, objs, ours):
    """{id(obj): the shortest reference chain's text} through the agent library referrers,
    within one time budget for them all; and its cost. `ours`: our containers holding them."""
    lib = ctx.agent.lib("referrers")
    budget = lib.Budget(seconds=CHAIN_SECONDS, cancelled=ctx.cancelled)
    found = {}
    for obj in objs:
        result = lib.chains(obj, 8, 1, budget, skip_idents=ctx.agent.thread_idents, exclude=ours)
        if result["chains"]:
            found[id(obj)] = result["chains"][0]["text"]
        if budget.stopped is not None:
            break
    return found, budget.report()


def _rss():
    return _proc_status().get("VmRSS")


def _collect():
    """gc.collect generation by generation: the objects found unreachable in each. One C call
    each, holding the GIL throughout; finalizers of what is freed run (the target's code)."""
    before, started = _rss(), time.perf_counter()
    collected = [gc.collect(g) for g in range(3)]
    return {"step": "gc", "collected": collected, "uncollectable": len(gc.garbage),
            "ms": round((time.perf_counter() - started) * 1000, 1), "rss_before": before, "rss_after": _rss()}


def _glibc():
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None


def _malloc_trim():
    """glibc's malloc_trim(0) through ctypes (imported if the target had not: a cost, said in
    the reply); the call runs without the GIL."""
    libc = _glibc()
    if not libc or not libc.startswith("glibc"):
        raise errors.CommandError("--malloc-trim needs glibc; this process's C library is %s"
                                  % (libc or "not glibc (musl?)"), code="NOT_GLIBC")
    before, started = _rss(), time.perf_counter()
    import ctypes
    trim = ctypes.CDLL(None).malloc_trim
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    released = trim(0)
    return {"step": "malloc_trim", "libc": libc, "released": bool(released),
            "ms": round((time.perf_counter() - started) * 1000, 1), "rss_before": before, "rss_after": _rss()}


def reclaim(ctx, args, limit):
    """--gc, then --malloc-trim: RSS before and after each; the modules we had to import."""
    loaded = set(sys.modules)
    steps = ([_collect()] if args.get("gc") else []) + ([_malloc_trim()] if args.get("malloc_trim") else [])
    result = {"action": "reclaim", "steps": steps, "rss_before": steps[0]["rss_before"],
              "rss_after": steps[-1]["rss_after"], "modules_imported": sorted(set(sys.modules) - loaded)}
    if args.get("summary"):
        result["summary"] = overview(ctx, limit)
    return result


def _limit(args):
    limit = args.get("limit")
    limit = 20 if limit is None else int(limit)
    if not 1 <= limit <= 200:
        raise errors.CommandError("--limit must be 1..200", code="BAD_ARGS")
    return limit


def _nframe(args):
    nframe = int(args.get("nframe") or 1)
    if not 1 <= nframe <= 50:
        raise errors.CommandError("--nframe must be 1..50", code="BAD_ARGS")
    return nframe


def _seconds(value, flag):
    seconds = float(value)
    if not 0 < seconds <= 3600:
        raise errors.CommandError("%s takes 0..3600 seconds" % flag, code="BAD_ARGS")
    return seconds


def run(ctx, args):
    limit = _limit(args)
    actions = [a for a in ("growth", "by_module", "reclaim") if args.get(a)]
    if args.get("trace") not in (None, True):
        actions.append("trace")
    if len(actions) > 1:
        raise errors.CommandError("one of --growth, --by-module, --gc/--malloc-trim, --trace N at a time",
                                  code="BAD_ARGS")
    if args.get("growth") is not None:
        return growth(ctx, _seconds(args["growth"], "--growth"), limit,
                      _nframe(args) if args.get("trace") is True else None)
    if args.get("trace") is True:
        raise errors.CommandError("--trace without seconds goes with --growth", code="BAD_ARGS")
    if args.get("by_module"):
        return by_module(ctx, limit)
    if args.get("reclaim"):
        return reclaim(ctx, args, limit)
    if args.get("trace") is not None:
        return trace(ctx, _seconds(args["trace"], "--trace"), limit, _nframe(args))
    return overview(ctx, limit)
