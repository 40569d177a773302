# top: function-level sampling from inside the agent, like py-spy top. This
# agent thread reads every thread's current frame (sys._current_frames) each
# interval and counts, per function, the samples where it is running (own) and
# on the stack (total). Every `refresh` it sends the table; at the end the
# collapsed stacks (for a flame graph). Nothing is installed in the target: when
# the command ends, sampling ends with it.
import sys
import time

MAX_STACKS = 20000        # distinct stacks kept for the flame graph; beyond: counted
MAX_DEPTH = 128           # frames per sample


class Sampler(object):
    def __init__(self, hidden, idle, lib):
        self.hidden, self.idle, self.state_of, self.code_name = hidden, idle, lib.state_of_frame, lib.code_name
        self.own, self.total, self.stacks = {}, {}, {}
        self.samples = self.thread_samples = self.idle_skipped = self.stacks_dropped = 0
        self.names = {}           # code -> (name, file, line)
        self.idle_cache = {}      # (code, line) -> idle?
        self.thread_names = {}
        self.refresh_names()

    def refresh_names(self):
        """Thread names (ident -> name), read once per refresh rather than per sample."""
        threads = sys.modules.get("threading")
        self.thread_names = dict((t.ident, t.name) for t in threads.enumerate()) if threads is not None else {}

    def sample(self):
        frames = sys._current_frames()
        self.samples += 1
        names = self.thread_names
        for ident, frame in frames.items():
            if ident in self.hidden:
                continue
            if not self.idle and self.is_idle(frame):
                self.idle_skipped += 1
                continue
            self.thread_samples += 1
            codes = []
            f = frame
            while f is not None and len(codes) < MAX_DEPTH:
                codes.append(f.f_code)
                f = f.f_back
            top = codes[0]
            self.own[top] = self.own.get(top, 0) + 1
            for code in set(codes):
                self.total[code] = self.total.get(code, 0) + 1
            key = (names.get(ident, "thread %d" % ident),) + tuple(reversed(codes))
            if key in self.stacks or len(self.stacks) < MAX_STACKS:
                self.stacks[key] = self.stacks.get(key, 0) + 1
            else:
                self.stacks_dropped += 1
        del frames

    def is_idle(self, frame):
        # By instruction (f_lasti is a plain field; f_lineno walks the line table on 3.12+).
        key = (frame.f_code, frame.f_lasti)
        idle = self.idle_cache.get(key)
        if idle is None:
            if len(self.idle_cache) > 50000:
                self.idle_cache.clear()
            idle = self.idle_cache[key] = self.state_of(frame) != "RUNNABLE"
        return idle

    def name(self, code):
        n = self.names.get(code)
        if n is None:
            n = self.names[code] = (self.code_name(code), code.co_filename, code.co_firstlineno)
        return n

    def table(self, limit):
        rows = []
        n = max(1, self.thread_samples)
        for code, total in self.total.items():
            own = self.own.get(code, 0)
            name, file, line = self.name(code)
            rows.append({"function": name, "file": file, "line": line, "own": own, "total": total,
                         "own_pct": round(100.0 * own / n, 1), "total_pct": round(100.0 * total / n, 1)})
        rows.sort(key=lambda r: (-r["own"], -r["total"], r["function"]))
        return rows[:limit]

    def collapsed(self):
        out = []
        for key, count in self.stacks.items():
            parts = [key[0]] + ["%s (%s:%d)" % self.name(c) for c in key[1:]]
            out.append([";".join(p.replace(";", ",") for p in parts), count])
        out.sort(key=lambda kv: -kv[1])
        return out


def run(ctx, args):
    interval = float(args.get("interval_ms") or 10) / 1000.0
    duration = args.get("duration")
    refresh = float(args.get("refresh") or 1.0)
    limit = int(args.get("limit") or 20)
    if not 0.001 <= interval <= 10 or (duration is not None and float(duration) <= 0) or not 1 <= limit <= 500:
        raise CommandError("-i must be 1 ms..10 s, -d positive, --limit 1..500", code="BAD_ARGS")  # noqa: F821
    top_id = "top_%06x" % (id(ctx) & 0xFFFFFF)
    sampler = Sampler(set(ctx.agent.thread_idents), bool(args.get("idle")), ctx.agent.lib("threads"))
    started = time.monotonic()
    ends = started + float(duration) if duration is not None else None
    ctx.emit({"type": "event", "event": "top_started",
              "data": {"top_id": top_id, "interval_ms": interval * 1000, "duration": duration}})
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
