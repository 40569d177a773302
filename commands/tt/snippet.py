# tt (time tunnel): record calls of the matched functions into a ring kept in the agent
# (agent/lib/tunnel.py), then list, show, search, replay or clear the records — from this
# CLI or from a later one: the records outlive the recording's connection, until
# `tt --clear`, `reset` or detach.
#
# Recording is watch's engine (observe.Observation + a CallProbe): the arguments are
# serialised at entry, to the -x depth, so a function that changes them later does not
# rewrite what was recorded; with --keep-objects the call's own objects are referenced too
# (counted against the byte budget), which is what --replay needs.
import time

REQUIRES = ("errors",)

STORE_KEY = "tt"                 # ctx.agent.state entry of the ring
RECORDS_ENTRY = "tt_records"     # its line in the "watches" registry: what `reset` finds and clears
DEFAULT_DEPTH = 2
VALUE_BYTES = 65536              # the serialiser's budget for one value (args, kwargs or result)
_NOT_REPLAYABLE = ("generator", "coroutine", "async_generator")
_VARIABLE = ("args", "kwargs", "target", "result", "exception")   # what differs in size per record
SIDE_EFFECTS = ("replay called the target's function again, in the target, with its side effects "
                "(writes, messages, payments...)")


def run(ctx, args):
    mode = args.get("mode")
    handler = MODES.get(mode)
    if handler is None:
        raise errors.CommandError("unknown tt mode %r" % (mode,), code="BAD_ARGS")
    return handler(ctx, args)


# ---------------------------------------------------------------------------
# recording
# ---------------------------------------------------------------------------
def record(ctx, args):
    lib = ctx.agent.lib
    observe = lib("observe")
    observation = observe.Observation(ctx, "tt", args)   # resolves, compiles the condition
    store = open_store(ctx, args, observation.functions)
    probe = probe_class(observe)(lib("serialize"), lib("tunnel"), observation, args, store)
    store.recordings[observation.id] = ctx.cancelled     # tt --clear, reset and detach stop it
    try:
        return observation.run(probe)
    finally:
        store.recordings.pop(observation.id, None)


def open_store(ctx, args, functions):
    """The ring (made on first use, or after a clear), with this recording's bounds; listed
    for `reset`, closed at detach."""
    state = ctx.agent.state
    store = state.get(STORE_KEY)
    max_records, max_bytes = int(args["max_records"]), int(args["max_bytes"])
    if store is None or store.closed:
        store = state[STORE_KEY] = ctx.agent.lib("tunnel").Tunnel(max_records, max_bytes)
        ctx.agent.on_detach(STORE_KEY, store.close)
    else:
        store.limit(max_records, max_bytes)
    registry = state.setdefault("watches", {})
    entry = registry.get(RECORDS_ENTRY)
    if entry is None or entry["stop"].store is not store:
        entry = registry[RECORDS_ENTRY] = {"watch_id": RECORDS_ENTRY, "command": "tt", "pattern": "",
                                           "functions": [], "stop": _Forget(state, store)}
    entry["functions"] = sorted(set(entry["functions"]) | set(functions))
    entry["pattern"] = " ".join(entry["functions"])
    return store


class _Forget(object):
    """The records' `stop` in the watches registry: `reset` sets it (as it stops a watch),
    which closes the ring (stopping its recordings, dropping every record) and forgets it."""

    def __init__(self, state, store):
        self.state, self.store = state, store

    def set(self):
        return forget(self.state, self.store)


def forget(state, store):
    """Closes the ring and removes it and its registry entry; returns how many records it held."""
    n = store.close()
    if state.get(STORE_KEY) is store:
        state.pop(STORE_KEY, None)
    entry = state.get("watches", {}).get(RECORDS_ENTRY)
    if entry is not None and entry["stop"].store is store:
        state["watches"].pop(RECORDS_ENTRY, None)
    return n


def probe_class(observe):
    """watch's CallProbe, keeping each call in the ring (a library's classes reach a snippet
    only at run time, so the subclass is made here)."""

    class TunnelProbe(observe.CallProbe):
        def __init__(self, ser, tunnel, observation, args, store):
            observe.CallProbe.__init__(self, ser, observation, args, on_entry=False, on_success=True,
                                       on_failure=True)
            self.tunnel, self.store = tunnel, store
            self.keep_objects = bool(args.get("keep_objects"))
            self.value_bytes = min(VALUE_BYTES, max(1024, store.max_bytes // 4))
            self.fixed_size = None    # the bytes of a record without its values: the same for all

        def started_data(self, observation):
            data = observe.CallProbe.started_data(self, observation)
            data.update(max_records=self.store.max_records, max_bytes=self.store.max_bytes,
                        keep_objects=self.keep_objects, depth=self.depth)
            return data

        def summary(self, observation):
            data = observe.CallProbe.summary(self, observation)
            data.update(self.store.stats())
            return data

        # -- target threads --------------------------------------------------------
        def on_enter(self, call):
            call.state = self.at_entry(call)   # before any line of the function runs
            return True

        def at_entry(self, call):
            ser, depth, cap = self.ser, self.depth, self.value_bytes
            args, kwargs, self_obj = call.args, call.kwargs, call.self_obj
            held = (args, dict(kwargs), self_obj) if self.keep_objects else None
            return (ser.to_json(list(args), depth=depth, max_bytes=cap),
                    ser.to_json(kwargs, depth=depth, max_bytes=cap) if kwargs else {},
                    ser.to_json(self_obj, depth=1) if self_obj is not None else None, held)

        def record(self, call, location, result, exc, duration_ns):
            """Kept in the ring (always), streamed to this client while there is room."""
            if self.reached():
                return
            rec = self.make_record(call, result, exc, duration_ns or 0)
            with self.lock:
                if self.reached() or self.store.add(rec) is None:
                    return
                self.count += 1
                rec.data["count"] = self.count
                if self.room():
                    self.queue.append(rec.data)
                if self.reached():
                    self.pause()

        def make_record(self, call, result, exc, duration_ns):
            ser, tunnel = self.ser, self.tunnel
            entry = call.state
            args, kwargs, target, held = entry if type(entry) is tuple else ([], {}, None, None)
            data = {"type": "tt_record", "index": None, "watch_id": self.watch_id, "timestamp": call.wall_time,
                    "func_name": call.name,
                    "thread": {"id": call.thread_id, "name": observe.thread_name(call.thread_id)},
                    "args": args, "kwargs": kwargs, "target": target,
                    "result": ser.to_json(result, depth=self.depth, max_bytes=self.value_bytes)
                    if exc is None else None,
                    "success": exc is None, "exception": ser.exception_info(exc) if exc is not None else None,
                    "duration_ms": round(duration_ns / 1e6, 6), "count": None, "bytes": 0,
                    "objects_kept": False, "depth": self.depth}
            if self.fixed_size is None:
                self.fixed_size = tunnel.data_size(dict(data, **dict.fromkeys(_VARIABLE)))
            sized = tunnel.data_size
            size = (self.fixed_size + sized(args) + sized(kwargs) + sized(target) + sized(data["result"])
                    + sized(data["exception"]))
            objects = None
            if held is not None:
                extra = tunnel.held_size(held)
                if size + extra <= self.store.max_bytes:
                    objects = (call.target.func,) + held + (call.target.skip_first, call.target.kind)
                    size += extra
                    data["objects_kept"] = True
                else:
                    self.store.objects_dropped += 1
            data["bytes"] = size
            return tunnel.Record(data, objects, size, call.target.arg_names)

    return TunnelProbe


# ---------------------------------------------------------------------------
# looking at the records (the agent's thread)
# ---------------------------------------------------------------------------
def list_records(ctx, args):
    store = ctx.agent.state.get(STORE_KEY)
    records = store.all() if store is not None else []
    return reply(ctx, "tt_list", {"records": [r.data for r in records]}, store)


def show(ctx, args):
    store = ctx.agent.state.get(STORE_KEY)
    rec = find(store, args.get("index"))
    ser = ctx.agent.lib("serialize")
    depth = args.get("depth")
    data = dict(rec.data)
    if depth is not None:
        for key in ("args", "kwargs", "target", "result"):
            data[key] = trimmed(ser, data[key], int(depth))
        if rec.objects is None and int(depth) > data["depth"]:
            data["note"] = ("recorded to -x %d, without its objects: record with a deeper -x "
                            "(or --keep-objects) to see more" % data["depth"])
        if rec.objects is not None:
            # deeper than the capture: only the kept objects can say, and only as they are now
            _, fargs, fkwargs, self_obj = rec.objects[:4]
            data["now"] = {"note": "the kept objects as they are now, which may differ from the call",
                           "args": ser.to_json(list(fargs), depth=int(depth)),
                           "kwargs": ser.to_json(fkwargs, depth=int(depth)),
                           "target": ser.to_json(self_obj, depth=1) if self_obj is not None else None}
    return reply(ctx, "tt_show", {"record": data}, store)


def trimmed(ser, value, depth, level=0):
    """Recorded data cut to `depth` levels (as the serialiser counts them): deeper containers
    become their text."""
    t = type(value)
    if t is not dict and t is not list:
        return value
    if level >= depth:
        return ser.safe_repr(value)
    if t is dict:
        return dict((k, trimmed(ser, v, depth, level + 1)) for k, v in value.items())
    return [trimmed(ser, v, depth, level + 1) for v in value]


def search(ctx, args):
    """The condition language over the records as captured (strict: the data is ours)."""
    store = ctx.agent.state.get(STORE_KEY)
    cond = ctx.agent.lib("condition").compile_for_command(args.get("expression"), None, True)
    found, failures, last_error = [], 0, None
    for rec in (store.all() if store is not None else []):
        d = rec.data
        try:
            if cond.evaluate_call(rec.arg_names, d["args"], d["kwargs"], d["target"], d["result"],
                                  d["exception"], d["duration_ms"]):
                found.append(d)
        except Exception as e:   # ConditionEvalError: counted, the search goes on
            failures, last_error = failures + 1, str(e)
    return reply(ctx, "tt_search", {"expression": args.get("expression"), "records": found,
                                    "condition_errors": failures, "condition_error": last_error}, store)


def replay(ctx, args):
    store = ctx.agent.state.get(STORE_KEY)
    rec = find(store, args.get("index"))
    if not args.get("confirm"):
        raise errors.CommandError("--replay runs the target's code again, with its side effects (writes, "
                                  "messages, payments...): add --confirm-side-effects to run it",
                                  code="CONFIRMATION_REQUIRED")
    objects = rec.objects
    if objects is None:
        raise errors.CommandError("record %d kept no objects to call with: record with --keep-objects "
                                  "(within --max-bytes) to replay" % rec.index, code="NOT_REPLAYABLE")
    func, fargs, fkwargs, self_obj, skip_first, kind = objects
    if kind in _NOT_REPLAYABLE:
        raise errors.CommandError("record %d is a call of a %s function: replay calls only plain "
                                  "functions and methods" % (rec.index, kind), code="NOT_REPLAYABLE")
    ser = ctx.agent.lib("serialize")
    depth = int(args.get("depth") or DEFAULT_DEPTH)
    result, exc, duration_ns = call_again(func, (self_obj,) + fargs if skip_first else fargs, fkwargs)
    recorded = rec.data
    return reply(ctx, "tt_replay", {
        "index": rec.index, "func_name": recorded["func_name"], "warning": SIDE_EFFECTS,
        "thread": "peeka agent", "success": exc is None,
        "result": ser.to_json(result, depth=depth) if exc is None else None,
        "exception": ser.exception_info(exc) if exc is not None else None,
        "duration_ms": round(duration_ns / 1e6, 6),
        "recorded": {"success": recorded["success"], "result": recorded["result"],
                     "exception": recorded["exception"], "duration_ms": recorded["duration_ms"]},
    }, store)


def call_again(func, args, kwargs):
    """(result, exception, ns) of one call on this (the agent's) thread; nothing escapes."""
    t0 = time.perf_counter_ns()
    try:
        result = func(*args, **kwargs)
        return result, None, time.perf_counter_ns() - t0
    except BaseException as e:  # SystemExit too: it would end the agent's thread, not the target
        return None, e, time.perf_counter_ns() - t0


def clear(ctx, args):
    store = ctx.agent.state.get(STORE_KEY)
    n = forget(ctx.agent.state, store) if store is not None else 0
    ctx.agent.remove_detach(STORE_KEY)
    return reply(ctx, "tt_clear", {"cleared": n}, None)


def find(store, index):
    rec = store.get(int(index)) if store is not None else None
    if rec is None:
        stats = store.stats() if store is not None else None
        held = ("records %d to %d" % (stats["first"], stats["next"] - 1)) if stats and stats["records"] \
            else "no records"
        raise errors.CommandError("no record %s (%s; tt --list shows them)" % (index, held), code="NOT_FOUND")
    return rec


def reply(ctx, kind, data, store):
    """One line for the client (tt's answers stream like its records), also the call's result."""
    data = dict(data, type=kind, store=store.stats() if store is not None else None)
    ctx.emit(data)
    return {"type": kind}


MODES = {"record": record, "list": list_records, "show": show, "search": search, "replay": replay,
         "clear": clear}
