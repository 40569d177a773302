# count: how many calls the matched functions get, every interval. Runs in the agent, on the
# observe library: Observation owns the lifecycle (install, the count_started/count_stopped
# events, Ctrl-C, reset, detach, uninstall), ObservingProbe the condition and -n (intervals).
import time
import _thread


def run(ctx, args):
    observe = ctx.agent.lib("observe")
    observation = observe.Observation(ctx, "count", args)

    class CountProbe(observe.ObservingProbe):
        calls, lock, capture_args = 0, _thread.allocate_lock(), observation.cond is not None

        def on_exit(self, call, result, exc, duration_ns):  # on the target's threads
            if self.cond is None or self.matches(call, result, exc, duration_ns):
                with self.lock:
                    self.calls += 1

        def follow(self, ctx, stop):  # one line per interval; a stop sends the last, shorter one
            while not self.reached():
                began, stopped = time.monotonic(), stop.wait(args["interval"])
                with self.lock:
                    calls, self.calls, self.count = self.calls, 0, self.count + 1
                line = {"type": "observation", "watch_id": observation.id, "timestamp": time.time(), "calls": calls,
                        "per_second": round(calls / max(time.monotonic() - began, 1e-3), 1)}
                if not ctx.emit({"type": "batch", "items": [line]}) or stopped:
                    return

        def summary(self, observation):
            return {"watch_id": observation.id, "intervals": self.count, "calls": observation.calls,
                    "condition_errors": self.condition_errors, "reason": self.stop_reason()}

    return observation.run(CountProbe(observation.cond, args["times"]))
