# monitor: per-function call statistics every cycle (calls, successes,
# failures, failure rate, avg/min/max/p95 duration), like Arthas's monitor.
# The probe runs on the target's threads and only updates counters under a lock.
import time

REQUIRES = ("errors", "real")

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


def monitor_probe_class(observe):
    """MonitorProbe, on the observe library's ObservingProbe: -n counts cycles."""

    class MonitorProbe(observe.ObservingProbe):
        def __init__(self, observation, cycle, times):
            observe.ObservingProbe.__init__(self, observation.cond, times)
            cond = self.cond
            # Arguments are needed only by a condition that reads more than the exit's values.
            self.capture_args = cond is not None and bool(set(cond.names) - {"cost", "result", "exception"})
            self.cycle, self.monitor_id = cycle, observation.id
            self.lock = real.allocate_lock()  # taken by greenlets and the agent's real thread
            self.names = observation.functions
            self.current = dict((n, Stats()) for n in self.names)

        def on_exit(self, call, result, exc, duration_ns):
            if self.cond is not None and not self.matches(call, result, exc, duration_ns):
                return
            with self.lock:
                stats = self.current.get(call.name)
                if stats is None:
                    stats = self.current[call.name] = Stats()
                stats.add(exc is None, duration_ns)

        def take(self):
            """The finished cycle's statistics; a new cycle starts empty."""
            with self.lock:
                done, self.current = self.current, dict((n, Stats()) for n in self.names)
            return done

        def started_data(self, observation):
            return {"monitor_id": observation.id, "watch_id": observation.id, "pattern": observation.pattern,
                    "functions": observation.functions, "cycle": self.cycle}

        def follow(self, ctx, stop):
            """One batch per cycle (self.count cycles so far), until -n cycles or `stop`; a cycle
            cut short by `stop` (Ctrl-C, reset, a script's end under `run`) is sent too, marked
            partial, when it saw calls: a short run would otherwise show nothing."""
            cycle = self.cycle
            started = time.monotonic()
            next_at = started + cycle
            # Woken every 0.2 s at most: a condition stopped for its cost ends the monitor.
            while not stop.wait(max(0.0, min(0.2, next_at - time.monotonic()))):
                if self.too_costly:
                    return
                if time.monotonic() < next_at:
                    continue
                started, next_at = next_at, next_at + cycle
                self.count += 1
                if not self.send_cycle(ctx, self.take(), cycle) or self.reached():
                    return
            done = self.take()
            if any(stats.calls for stats in done.values()):
                self.send_cycle(ctx, done, time.monotonic() - started, partial=True)

        def send_cycle(self, ctx, done, seconds, partial=False):
            items = []
            for name, stats in sorted(done.items()):
                item = {"type": "observation", "monitor_id": self.monitor_id, "watch_id": self.monitor_id,
                        "timestamp": time.time(), "cycle": self.count + (1 if partial else 0),
                        "func_name": name, "cycle_seconds": round(seconds, 3)}
                if partial:
                    item["partial"] = True
                item.update(stats.report())
                items.append(item)
            return ctx.emit({"type": "batch", "items": items})

        def summary(self, observation):
            return {"monitor_id": observation.id, "cycles": self.count, "condition_errors": self.condition_errors,
                    "condition_error": self.condition_error, "probe_errors": self.errors,
                    "reason": self.stop_reason()}

    return MonitorProbe


def run(ctx, args):
    cycle = float(args.get("cycle") or 60)
    if cycle <= 0:
        raise errors.CommandError("the cycle must be a positive number of seconds", code="BAD_ARGS")
    observe = ctx.agent.lib("observe")
    observation = observe.Observation(ctx, "monitor", args)
    probe = monitor_probe_class(observe)(observation, cycle, int(args.get("times", -1)))
    return observation.run(probe)
