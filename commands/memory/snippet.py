# memory: the process's memory at a glance (RSS and peak, collector counters, the
# object types with most instances and most bytes), and `--trace N`: tracemalloc for N
# seconds, then the top allocation sites and what grew; tracemalloc is put back as it
# was (stopped again if peeka started it).
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
    """(objects walked, by count, by shallow size) over every object the collector tracks."""
    counts, sizes, total = {}, {}, 0
    for chunk in ctx.agent.lib("heap").tracked_objects(ctx.cancelled):
        total += len(chunk)
        for o in chunk:
            t = type(o)
            counts[t] = counts.get(t, 0) + 1
            try:
                sizes[t] = sizes.get(t, 0) + sys.getsizeof(o)
            except Exception:
                pass
    name = reflect.qualified_name           # no attribute lookup on the classes
    by_count = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    by_size = sorted(sizes.items(), key=lambda kv: -kv[1])[:limit]
    return total, ([{"type": name(t), "count": n, "size_bytes": sizes.get(t, 0)} for t, n in by_count],
                   [{"type": name(t), "size_bytes": n, "count": counts.get(t, 0)} for t, n in by_size])


def overview(ctx, limit):
    status = _proc_status()
    tracked, (by_count, by_size) = object_types(ctx, limit)
    tm = sys.modules.get("tracemalloc")     # only reported if the target already uses it
    tracing = bool(tm and tm.is_tracing())
    info = {"action": "overview", "pid": os.getpid(), "rss_bytes": status.get("VmRSS"),
            "peak_rss_bytes": status.get("VmHWM"), "vm_bytes": status.get("VmSize"),
            "gc": dict(_gc_info(), tracked_objects=tracked),
            "tracemalloc": {"tracing": tracing},
            "top_by_count": by_count, "top_by_size": by_size, "limit": limit}
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


def trace(ctx, seconds, limit, nframe):
    import tracemalloc
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start(nframe)
        _tracing.append(True)
    ours = (tracemalloc.Filter(False, "<peeka*"), tracemalloc.Filter(False, tracemalloc.__file__))
    try:
        first = tracemalloc.take_snapshot().filter_traces(ours)
        started = time.time()
        ctx.cancelled.wait(seconds)
        last = tracemalloc.take_snapshot().filter_traces(ours)
        elapsed = time.time() - started
        current, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            del _tracing[:]
            tracemalloc.stop()      # as it was: frees its memory too
    site = lambda tb: {"file": tb[0].filename, "line": tb[0].lineno}
    top = [dict(site(s.traceback), size_bytes=s.size, count=s.count)
           for s in last.statistics("lineno")[:limit]]
    growth = [dict(site(d.traceback), size_diff_bytes=d.size_diff, size_bytes=d.size, count_diff=d.count_diff)
              for d in last.compare_to(first, "lineno")[:limit] if d.size_diff > 0]
    return {"action": "trace", "seconds": round(elapsed, 3), "interrupted": ctx.cancelled.is_set(),
            "traced_bytes": current, "traced_peak_bytes": peak, "top": top, "growth": growth,
            "tracemalloc_was_running": was_tracing,
            "tracemalloc_after": "left running (it was before)" if was_tracing else "stopped again"}


def run(ctx, args):
    limit = args.get("limit")
    limit = 20 if limit is None else int(limit)
    if not 1 <= limit <= 200:
        raise errors.CommandError("--limit must be 1..200", code="BAD_ARGS")
    seconds = args.get("trace")
    if seconds is None:
        return overview(ctx, limit)
    seconds, nframe = float(seconds), int(args.get("nframe") or 1)
    if not 0 < seconds <= 3600 or not 1 <= nframe <= 50:
        raise errors.CommandError("--trace takes 0..3600 seconds and --nframe 1..50", code="BAD_ARGS")
    return trace(ctx, seconds, limit, nframe)
