# watch / stack: observe each call of the matched functions. Runs in the agent.
# The probe callbacks run on the target's own threads: they only check the
# condition and the rate limit, serialise what will be sent, and append to a
# bounded queue. This agent thread drains the queue and streams batches.
import collections
import time
import _thread

QUEUE_MAX = 10000        # observations waiting to be sent; beyond: dropped and counted


class WatchProbe(object):
    def __init__(self, lib, cond, opts):
        ser, streaming = lib("serialize"), lib("stream")
        self.thread_name = streaming.thread_name
        self.errors = 0
        self.ser, self.cond = ser, cond
        self.watch_id = opts["watch_id"]
        self.depth = int(opts.get("depth") or 2)
        self.times = int(opts.get("times", -1))
        self.stack_depth = opts.get("stack_depth")
        self.rate = streaming.RateLimit(opts.get("rate", 1000))
        flags = [opts.get(k) for k in ("before", "success", "exception", "finish")]
        self.on_entry = bool(opts.get("before"))
        # With no flag at all, a call is shown when it finishes.
        finish = bool(opts.get("finish")) or not any(flags)
        self.on_success = finish or bool(opts.get("success"))
        self.on_failure = finish or bool(opts.get("exception"))
        self.capture_args = True
        # Decide at entry unless the condition reads what only the exit knows.
        self.decide_at_entry = cond is None or not (set(cond.names) & {"cost", "result", "exception"})
        self.queue = collections.deque()
        self.count = 0           # observations accepted (numbered 1, 2, ...)
        self.rate_dropped = 0
        self.queue_dropped = 0
        self.condition_errors = 0
        self.condition_error = None
        self.too_costly = False  # the condition kept being cut off by its budget: the watch stops
        self.lock = _thread.allocate_lock()
        self.handle = None       # set once installed: pause()/resume() go through it
        if cond is not None and self.decide_at_entry:
            self.admit = None    # the acceptor decides: one call fewer per call

    def drops(self):
        return {"rate_dropped": self.rate_dropped, "queue_dropped": self.queue_dropped,
                "condition_errors": self.condition_errors, "condition_error": self.condition_error}

    def reached(self):
        return 0 <= self.times <= self.count or self.too_costly

    # -- engine callbacks (target threads) ---------------------------------
    def admit(self):
        """Before any argument is captured: with no condition the rate limit decides here, and
        once it is spent the engine is told to skip calls until it refills. (The engine counts
        calls: Handle.calls_seen().)"""
        if self.reached():
            self.pause()
            return False
        if self.cond is not None:
            return True
        if self.rate.allow():
            return True
        self.rate_dropped += 1
        self.pause()
        return False

    def acceptor(self, target):
        """A condition that needs nothing from the exit is decided on the captured arguments,
        before the engine builds anything for the call: one generated function (the condition
        inlined), which calls back only when it is true (the rate limit) or fails."""
        if self.cond is None or not self.decide_at_entry:
            return None
        return self.cond.acceptor(_positions(target), self.matched, self.failed)

    def quick_acceptor(self, target, local_names):
        """acceptor() reading a function's positional parameters straight from its frame's
        locals (the engine asks when it can use one); None when the condition needs more."""
        if self.cond is None or not self.decide_at_entry:
            return None
        return self.cond.acceptor(_positions(target), self.matched, self.failed, tuple(local_names))

    def matched(self):
        if self.rate.allow():
            return True
        self.rate_dropped += 1
        return False

    def failed(self, message):
        """A condition error is counted and reported, never raised into the target."""
        self.condition_errors += 1
        self.condition_error = message
        self.check_cost()
        return False

    def check_cost(self):
        if self.cond.too_costly():
            self.too_costly = True
            self.pause()

    def on_enter(self, call):
        if self.on_entry:
            if self.decide_at_entry:  # admit() or accept() has decided and taken the token
                self.record(call, "AtEnter", None, None, 0)
            else:
                self.consider(call, "AtEnter", None, None, None)
        return self.on_success or self.on_failure

    # -- pausing (rate limit spent, or -n reached) ---------------------------
    def pause(self):
        if self.handle is not None:
            self.handle.pause()

    def reopen(self, final=False):
        """Agent thread, every tick: ends a pause once the rate limit has a token again (or
        the watch ends), and counts the calls skipped meanwhile as dropped."""
        h = self.handle
        if h is not None and h.paused and not self.reached() and (final or self.rate.ready()):
            self.rate_dropped += h.resume()

    def on_exit(self, call, result, exc, duration_ns):
        if not ((exc is None and self.on_success) or (exc is not None and self.on_failure)):
            return
        location = "AtExit" if exc is None else "AtExceptionExit"
        if self.decide_at_entry:
            self.record(call, location, result, exc, duration_ns)
        else:
            self.consider(call, location, result, exc, duration_ns)

    # -- deciding and recording --------------------------------------------
    def consider(self, call, location, result, exc, duration_ns):
        """Condition (with what the exit knows), then the rate limit, then record."""
        if self.reached():
            return
        if self.cond is not None and not self.matches(call, result, exc, duration_ns):
            return
        if not self.rate.allow():
            self.rate_dropped += 1
            return
        self.record(call, location, result, exc, duration_ns)

    def record(self, call, location, result, exc, duration_ns):
        if len(self.queue) >= QUEUE_MAX:
            self.queue_dropped += 1
            return
        obs = self.observation(call, location, result, exc, duration_ns or 0)  # before counting it
        with self.lock:
            if self.reached():
                return
            self.count += 1
            obs["count"] = self.count
            self.queue.append(obs)
            if self.reached():
                self.pause()        # -n reached: the next calls cost nothing until we uninstall

    def matches(self, call, result, exc, duration_ns):
        try:
            return self.cond.evaluate_call(call.arg_names, call.args, call.kwargs, call.self_obj, result, exc,
                                           None if duration_ns is None else duration_ns / 1e6)
        except Exception as e:  # ConditionEvalError: counted and reported, never raised
            self.condition_errors += 1
            self.condition_error = str(e)
            self.check_cost()
            return False

    def observation(self, call, location, result, exc, duration_ns):
        ser, depth = self.ser, self.depth
        obs = {
            "type": "observation",
            "watch_id": self.watch_id,
            "timestamp": call.wall_time,
            "func_name": call.name,
            "location": location,
            "args": ser.to_json(list(call.args), depth=depth),
            "kwargs": ser.to_json(call.kwargs, depth=depth),
            "target": ser.to_json(call.self_obj, depth=1) if call.self_obj is not None else None,
            "result": ser.to_json(result, depth=depth) if location == "AtExit" else None,
            "success": exc is None,
            "exception": ser.exception_info(exc) if exc is not None else None,
            "duration_ms": round(duration_ns / 1e6, 6),
            "count": None,  # numbered when queued
            "thread": {"id": call.thread_id, "name": self.thread_name(call.thread_id)},
        }
        if self.stack_depth is not None:
            obs["stack"] = caller_stack(call.frame, int(self.stack_depth))
        return obs


def _reason(probe):
    """Why the watch ended: -n reached, the condition stopped for its cost, or a stop."""
    return "condition_too_costly" if probe.too_costly else "times" if probe.reached() else "stopped"


def _costly_message(probe):
    """The stopped event's message when the condition stopped the watch for its cost."""
    if not probe.too_costly:
        return {}
    return {"message": probe.cond.stop_message(probe.condition_error)}


def _positions(target):
    """Argument name -> index in the call's args, for a compiled condition."""
    return dict((n, i) for i, n in enumerate(target.arg_names))


def caller_stack(frame, depth):
    """The frames that led to this call, innermost (the caller) first."""
    import linecache
    out = []
    f = frame.f_back if frame is not None else None
    while f is not None and len(out) < depth:
        code = f.f_code
        line = f.f_lineno
        out.append({"file": code.co_filename, "line": line, "function": code.co_name,
                    "code": (linecache.getline(code.co_filename, line).strip() or None)})
        f = f.f_back
    return out


def run(ctx, args):
    inst = ctx.agent.lib("instrument")
    mode = args.get("mode", "watch")
    pattern = args.get("pattern")
    targets = inst.resolve_for_command(pattern)
    cond = ctx.agent.lib("condition").compile_for_command(args.get("condition"), targets, args.get("strict"))
    watch_id = "%s_%06x" % (mode, id(ctx) & 0xFFFFFF)
    opts = dict(args, watch_id=watch_id)
    if mode == "stack":
        opts.update(before=True, success=False, exception=False, finish=False)
    probe = WatchProbe(ctx.agent.lib, cond, opts)
    names = [t.name for t in targets]
    stop = ctx.cancelled
    registry = ctx.agent.state.setdefault("watches", {})
    ctx.agent.on_detach("instrument", inst.uninstall_all)
    handle = probe.handle = inst.install(targets, probe)
    registry[watch_id] = {"watch_id": watch_id, "command": mode, "pattern": pattern,
                          "functions": names, "stop": stop}
    started = time.time()
    try:
        ctx.emit({"type": "event", "event": mode + "_started",
                  "data": {"watch_id": watch_id, "pattern": pattern, "functions": names,
                           "condition": args.get("condition")}})
        ctx.agent.lib("stream").stream(ctx, probe, stop, "watch_dropped")
    finally:
        probe.reopen(final=True)  # counts what a pause skipped
        calls = handle.calls_seen()
        inst.uninstall(handle)
        registry.pop(watch_id, None)
    summary = {"watch_id": watch_id, "pattern": pattern, "observations": probe.count, "calls": calls,
               "rate_dropped": probe.rate_dropped, "queue_dropped": probe.queue_dropped,
               "condition_errors": probe.condition_errors, "condition_error": probe.condition_error,
               "probe_errors": probe.errors, "seconds": round(time.time() - started, 3),
               "reason": _reason(probe)}
    ctx.emit(dict({"type": "event", "event": mode + "_stopped", "data": summary}, **_costly_message(probe)))
    return summary
