# top: function-level sampling from inside the agent, like py-spy top. This
# agent thread reads every thread's current frame (sys._current_frames) each
# interval and counts, per function, the samples where it is running (own) and
# on the stack (total). Every `refresh` it sends the table; at the end the
# collapsed stacks (for a flame graph). Nothing is installed in the target: when
# the command ends, sampling ends with it.
import sys
import time
from array import array

REQUIRES = ("errors", "reflect")

MAX_STACKS = 20000        # distinct stacks kept for the flame graph; beyond: counted
MAX_CODES = 50000         # distinct functions kept; beyond: one "(more functions)" entry
MAX_DEPTH = 128           # frames per sample
SAMPLES, THREAD_SAMPLES, IDLE_SKIPPED, STACKS_DROPPED = range(4)


class Sampler(object):
    """Per-function counts, kept so that sampling disturbs the target as little as it can.
    - Functions are numbered by id(code) (`slot_of`): hashing a code object hashes its
      bytecode and constants (not cached by CPython), which made a sample ~80 us of GIL
      time; `codes` holds each counted code, so its id cannot be reused meanwhile.
    - Counts live in arrays of C longs: a Python int above 256 is a heap object, and
      replacing a few every sample moves small blocks around the allocator's pools that
      the target's own ints share (measured on 3.12: the target's speed then swung by
      -30..+10% with the heap's state, against ~1% with PYTHONMALLOC=malloc)."""

    def __init__(self, hidden, idle, lib):
        self.hidden, self.idle, self.state_of, self.code_name = hidden, idle, lib.state_of_frame, lib.code_name
        self.thread_table = lib.thread_table
        self.slot_of = {}         # id(code) -> slot; slot 0 stands for functions beyond MAX_CODES
        self.codes = [None]       # slot -> code
        self.own, self.total = array("l", [0]), array("l", [0])
        self.stack_of = {}        # (thread name, slots root first) -> index in stack_counts
        self.stack_counts = array("l")
        self.counts = array("l", [0, 0, 0, 0])
        self.names = {}           # slot -> (name, file, line)
        self.idle_cache = {}      # (id(code), f_lasti) -> idle?
        self.thread_names = {}
        self.refresh_names()

    samples = property(lambda self: self.counts[SAMPLES])
    thread_samples = property(lambda self: self.counts[THREAD_SAMPLES])
    idle_skipped = property(lambda self: self.counts[IDLE_SKIPPED])
    stacks_dropped = property(lambda self: self.counts[STACKS_DROPPED])

    def refresh_names(self):
        """Thread names (ident -> name), read once per refresh rather than per sample."""
        table = self.thread_table(sys._current_frames())  # real threads, also under gevent
        self.thread_names = dict((ident, info["name"]) for ident, info in table.items())

    def slot(self, code):
        slot = self.slot_of.get(id(code))
        if slot is None:
            if len(self.codes) > MAX_CODES:
                return 0
            slot = self.slot_of[id(code)] = len(self.codes)
            self.codes.append(code)
            self.own.append(0)
            self.total.append(0)
        return slot

    def sample(self):
        frames = sys._current_frames()
        counts, own, total = self.counts, self.own, self.total
        counts[SAMPLES] += 1
        for ident, frame in frames.items():
            if ident in self.hidden:
                continue
            if not self.idle and self.is_idle(frame):
                counts[IDLE_SKIPPED] += 1
                continue
            counts[THREAD_SAMPLES] += 1
            slots = []
            f = frame
            while f is not None and len(slots) < MAX_DEPTH:
                slots.append(self.slot(f.f_code))
                f = f.f_back
            own[slots[0]] += 1
            for slot in set(slots):
                total[slot] += 1
            slots.reverse()
            key = (self.thread_names.get(ident) or "thread %d" % ident, tuple(slots))
            index = self.stack_of.get(key)
            if index is None:
                if len(self.stack_counts) >= MAX_STACKS:
                    counts[STACKS_DROPPED] += 1
                    continue
                index = self.stack_of[key] = len(self.stack_counts)
                self.stack_counts.append(0)
            self.stack_counts[index] += 1
        del frames

    def is_idle(self, frame):
        # By instruction (f_lasti is a plain field; f_lineno walks the line table on 3.12+).
        # The frame's code is alive while we hold the frame, and an entry is only read for a
        # live frame, so a reused id can at worst repeat an old, harmless judgement once
        # the old code is gone; the cache is bounded.
        key = (id(frame.f_code), frame.f_lasti)
        idle = self.idle_cache.get(key)
        if idle is None:
            if len(self.idle_cache) > 50000:
                self.idle_cache.clear()
            idle = self.idle_cache[key] = self.state_of(frame) != "RUNNABLE"
        return idle

    def name(self, slot):
        n = self.names.get(slot)
        if n is None:
            code = self.codes[slot]
            if code is None:
                n = ("(more functions than top keeps)", "", 0)
            else:
                n = (self.code_name(code), code.co_filename, code.co_firstlineno)
            self.names[slot] = n
        return n

    def table(self, limit):
        rows = []
        n = max(1, self.thread_samples)
        for slot, total in enumerate(self.total):
            if not total:
                continue
            own = self.own[slot]
            name, file, line = self.name(slot)
            rows.append({"function": name, "file": file, "line": line, "own": own, "total": total,
                         "own_pct": round(100.0 * own / n, 1), "total_pct": round(100.0 * total / n, 1)})
        rows.sort(key=lambda r: (-r["own"], -r["total"], r["function"]))
        return rows[:limit]

    def collapsed(self):
        out = []
        for (thread, slots), index in self.stack_of.items():
            parts = [thread] + ["%s (%s:%d)" % self.name(slot) for slot in slots]
            out.append([";".join(p.replace(";", ",") for p in parts), self.stack_counts[index]])
        out.sort(key=lambda kv: -kv[1])
        return out


def run(ctx, args):
    interval = float(args.get("interval_ms") or 10) / 1000.0
    duration = args.get("duration")
    refresh = float(args.get("refresh") or 1.0)
    limit = int(args.get("limit") or 20)
    # Read from outside, a sample costs the target nothing: 10 kHz is allowed (as py-spy's rates).
    lowest = 0.0001 if args.get("sampler") == "remote" else 0.001
    if not lowest <= interval <= 10 or (duration is not None and float(duration) <= 0) or not 1 <= limit <= 500:
        raise errors.CommandError("-i must be %g ms..10 s, -d positive, --limit 1..500" % (lowest * 1000),
                                  code="BAD_ARGS")
    top_id = "top_%06x" % (id(ctx) & 0xFFFFFF)
    if args.get("sampler") == "remote":
        return _park(ctx, top_id, refresh)
    sampler = Sampler(set(ctx.agent.thread_idents), bool(args.get("idle")), ctx.agent.lib("threads"))
    started = time.monotonic()
    ends = started + float(duration) if duration is not None else None
    ctx.emit({"type": "event", "event": "top_started", "data": {
        "top_id": top_id, "interval_ms": interval * 1000, "duration": duration, "sampler": "agent"}})
    next_sample, next_refresh = started, started + refresh
    busy = 0.0
    while not ctx.cancelled.is_set():
        now = time.monotonic()
        if ends is not None and now >= ends:
            break
        if now >= next_sample:
            t0 = time.thread_time()
            sampler.sample()
            busy += time.thread_time() - t0  # CPU of this thread (not time spent waiting for the GIL)
            next_sample += interval
            if next_sample < now:           # fell behind (a long GIL hold): do not catch up in a burst
                next_sample = now + interval
        if now >= next_refresh:
            next_refresh += refresh
            sampler.refresh_names()
            if not ctx.emit(observation(top_id, sampler, limit, now - started, busy)):
                break
        ctx.cancelled.wait(max(0.0, min(next_sample, next_refresh) - time.monotonic()))
    elapsed = time.monotonic() - started
    final = observation(top_id, sampler, limit, elapsed, busy)
    final["final"] = True
    ctx.emit(final)
    ctx.emit({"type": "profile", "top_id": top_id, "samples": sampler.thread_samples,
              "interval_ms": interval * 1000, "stacks": sampler.collapsed()})
    summary = {"top_id": top_id, "samples": sampler.samples, "thread_samples": sampler.thread_samples,
               "idle_skipped": sampler.idle_skipped, "stacks_dropped": sampler.stacks_dropped,
               "seconds": round(elapsed, 3), "sampling_cpu_ms": round(busy * 1000, 1)}
    ctx.emit({"type": "event", "event": "top_stopped", "data": summary})
    return summary


def observation(top_id, sampler, limit, elapsed, busy):
    return {"type": "observation", "top_id": top_id, "watch_id": top_id, "timestamp": time.time(),
            "seconds": round(elapsed, 3), "samples": sampler.samples, "thread_samples": sampler.thread_samples,
            "idle_skipped": sampler.idle_skipped, "sampling_cpu_ms": round(busy * 1000, 1),
            "functions": sampler.table(limit)}


# ---- remote sampling: the CLI reads the stacks from outside ---------------------------------
# This thread parks in _park for the whole command, so its stack is known exactly; the CLI
# finds where the interpreter keeps threads, frames and code fields by matching what the
# probe says (an object's id() is its address in CPython). Every refresh it sends what the
# CLI cannot read well from outside: thread names and native ids, module names by file, and
# before 3.11 (no co_qualname) the qualified names of functions defined in classes.

def _park(ctx, top_id, refresh):
    names = Names(ctx)
    ctx.emit({"type": "event", "event": "top_names", "data": names.update()})
    # Last before parking: the CLI reads this stack as soon as the probe arrives.
    ctx.emit({"type": "event", "event": "top_probe", "data": probe(ctx, sys._getframe())})
    cpu = time.thread_time()
    while not ctx.cancelled.wait(refresh):
        if not ctx.emit({"type": "event", "event": "top_names", "data": names.update()}):
            break
    return {"top_id": top_id, "sampler": "remote", "agent_cpu_ms": round((time.thread_time() - cpu) * 1000, 1)}


def probe(ctx, me):
    wait = type(ctx.cancelled).wait.__code__
    codes = [wait, me.f_code, me.f_back.f_code]
    return {
        "version": list(sys.version_info[:2]),
        "ident": ctx.agent.real.get_ident(),  # gevent's patched one gives a greenlet's id
        "idents": list(sys._current_frames()),
        "codes": [id(c) for c in codes],
        "frames": [id(me), id(me.f_back)],
        "code_type": id(type(me.f_code)),
        "code_fields": [{"filename": id(c.co_filename), "name": id(c.co_name),
                         "qualname": id(c.co_qualname) if _HAS_QUALNAME else 0,
                         "firstlineno": c.co_firstlineno} for c in codes],
        "str_sizes": {"ascii": sys.getsizeof("") - 1, "compact": sys.getsizeof("\xe9") - 2},
    }


class Names(object):
    """What changed since the last update: modules by file, qualified names (before 3.11),
    and every thread's name and native id (the CLI reads its run state from /proc)."""

    def __init__(self, ctx):
        self.ctx, self.modules = ctx, set()

    def update(self):
        table = self.ctx.agent.lib("threads").thread_table(sys._current_frames())
        files, quals = {}, {}
        for name, module in list(sys.modules.items()):
            if id(module) in self.modules or not reflect.is_module(module):
                continue
            self.modules.add(id(module))
            # not getattr (a module's __getattr__ may run) nor vars() (loads a lazy module)
            f = reflect.module_dict(module).get("__file__")
            if type(f) is str and f not in files:  # the first module of a file, as code_name
                files[f] = name
                if not _HAS_QUALNAME:
                    quals[f] = _qualnames(module, f)
        return {"threads": [[ident, info["name"], info["native_id"]] for ident, info in table.items()],
                "hidden": sorted(self.ctx.agent.thread_idents), "modules": files, "qualnames": quals}


_HAS_QUALNAME = sys.version_info >= (3, 11)


def _qualnames(module, filename):
    """[first line, co_name, qualname] of the methods in the module's classes (before 3.11).
    Only class dictionaries are read: no attribute access runs the target's code."""
    out = []
    for value in list(reflect.module_dict(module).values()):
        if not reflect.is_class(value):
            continue
        for attr in list((reflect.type_dict(value) or {}).values()):  # None: a C type not ready (<3.12)
            kind = type(attr)
            fn = (reflect.static_function(attr) if issubclass(kind, staticmethod) else
                  reflect.class_function(attr) if issubclass(kind, classmethod) else attr)
            code = getattr(fn, "__code__", None) if type(fn) is type(probe) else None
            if code is not None and code.co_filename == filename and fn.__qualname__ != code.co_name:
                out.append([code.co_firstlineno, code.co_name, fn.__qualname__])
    return out
