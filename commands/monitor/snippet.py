# monitor: per-function call statistics every cycle (calls, successes,
# failures, failure rate, avg/min/max/p95 duration), like Arthas's monitor.
# The probe runs on the target's threads and only updates counters under a lock.
import time
import _thread

RESERVOIR = 4096  # durations kept per function and cycle for the p95


class Stats(object):
    __slots__ = ("calls", "success", "fail", "total_ns", "min_ns", "max_ns", "samples")

    def __init__(self):
        self.calls = self.success = self.fail = self.total_ns = 0
        self.min_ns = self.max_ns = None
        self.samples = []

    def add(self, ok, duration_ns):
        self.calls += 1
        if ok:
            self.success += 1
        else:
            self.fail += 1
        self.total_ns += duration_ns
        if self.min_ns is None or duration_ns < self.min_ns:
            self.min_ns = duration_ns
        if self.max_ns is None or duration_ns > self.max_ns:
            self.max_ns = duration_ns
        if len(self.samples) < RESERVOIR:
            self.samples.append(duration_ns)
        else:  # keep a uniform sample of the cycle's durations
            j = (self.calls * 2654435761) % self.calls
            if j < RESERVOIR:
                self.samples[j] = duration_ns

    def report(self):
        ms = lambda ns: None if ns is None else round(ns / 1e6, 6)
        p95 = None
        if self.samples:
            ordered = sorted(self.samples)
            p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
        return {"calls": self.calls, "count": self.calls, "success": self.success, "fail": self.fail,
                "fail_rate": round(self.fail / self.calls, 4) if self.calls else 0.0,
                "avg_ms": ms(self.total_ns / self.calls) if self.calls else None,
                "min_ms": ms(self.min_ns), "max_ms": ms(self.max_ns), "p95_ms": ms(p95)}


class MonitorProbe(object):
    def __init__(self, names, cond):
        self.errors = 0
        self.cond = cond
        # Arguments are needed only by a condition that reads more than the exit's values.
        self.capture_args = cond is not None and bool(set(cond.names) - {"cost", "result", "exception"})
        self.lock = _thread.allocate_lock()
        self.names = names
        self.current = dict((n, Stats()) for n in names)
        self.condition_errors = 0
        self.condition_error = None
        self.too_costly = False  # the condition kept being cut off by its budget: the monitor stops

    def on_enter(self, call):
        return True

    def on_exit(self, call, result, exc, duration_ns):
        if self.cond is not None and not self.matches(call, result, exc, duration_ns):
            return
        with self.lock:
            stats = self.current.get(call.name)
            if stats is None:
                stats = self.current[call.name] = Stats()
            stats.add(exc is None, duration_ns)

    def matches(self, call, result, exc, duration_ns):
        if self.too_costly:
            return False
        try:
            return self.cond.evaluate_call(call.arg_names, call.args, call.kwargs, call.self_obj, result, exc,
                                           duration_ns / 1e6)
        except Exception as e:
            self.condition_errors += 1
            self.condition_error = str(e)
            self.too_costly = self.cond.too_costly()
            return False

    def take(self):
        """The finished cycle's statistics; a new cycle starts empty."""
        with self.lock:
            done, self.current = self.current, dict((n, Stats()) for n in self.names)
        return done


def run(ctx, args):
    inst = ctx.agent.lib("instrument")
    pattern = args.get("pattern")
    cycle = float(args.get("cycle") or 60)
    times = int(args.get("times", -1))
    if cycle <= 0:
        raise CommandError("the cycle must be a positive number of seconds", code="BAD_ARGS")
    targets = inst.resolve_for_command(pattern)
    cond = ctx.agent.lib("condition").compile_for_command(args.get("condition"), targets, args.get("strict"))
    names = [t.name for t in targets]
    probe = MonitorProbe(names, cond)
    monitor_id = "monitor_%06x" % (id(ctx) & 0xFFFFFF)
    registry = ctx.agent.state.setdefault("watches", {})
    ctx.agent.on_detach("instrument", inst.uninstall_all)
    handle = inst.install(targets, probe)
    registry[monitor_id] = {"watch_id": monitor_id, "command": "monitor", "pattern": pattern,
                            "functions": names, "stop": ctx.cancelled}
    cycles = 0
    try:
        ctx.emit({"type": "event", "event": "monitor_started",
                  "data": {"monitor_id": monitor_id, "watch_id": monitor_id, "pattern": pattern,
                           "functions": names, "cycle": cycle}})
        next_at = time.monotonic() + cycle
        # Woken every 0.2 s at most: a condition stopped for its cost ends the monitor.
        while not ctx.cancelled.wait(max(0.0, min(0.2, next_at - time.monotonic()))):
            if probe.too_costly:
                break
            if time.monotonic() < next_at:
                continue
            next_at += cycle
            cycles += 1
            items = []
            for name, stats in sorted(probe.take().items()):
                item = {"type": "observation", "monitor_id": monitor_id, "watch_id": monitor_id,
                        "timestamp": time.time(), "cycle": cycles, "func_name": name,
                        "cycle_seconds": cycle}
                item.update(stats.report())
                items.append(item)
            if not ctx.emit({"type": "batch", "items": items}) or 0 <= times <= cycles:
                break
    finally:
        inst.uninstall(handle)
        registry.pop(monitor_id, None)
    summary = {"monitor_id": monitor_id, "cycles": cycles, "condition_errors": probe.condition_errors,
               "condition_error": probe.condition_error, "probe_errors": probe.errors,
               "reason": "condition_too_costly" if probe.too_costly else "times" if 0 <= times <= cycles
               else "stopped"}
    event = {"type": "event", "event": "monitor_stopped", "data": summary}
    if probe.too_costly:
        event["message"] = probe.cond.stop_message(probe.condition_error)
    ctx.emit(event)
    return summary
