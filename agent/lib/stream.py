# peeka agent library "stream": what commands that stream observations share: a
# token-bucket rate limit, thread names, and the loop that drains a probe's bounded
# queue to the client in batches, reporting drops.
import sys
import time

BATCH_MAX = 512          # observations per frame
TICK = 0.005             # how often a queue is drained (s): bounds call-to-line latency
DROP_REPORT_EVERY = 1.0  # at most one drop event per second


class RateLimit(object):
    """Token bucket: `rate` per second, bursts up to one second's worth; 0 = no limit."""

    def __init__(self, rate):
        self.rate = float(rate)
        self.tokens = self.rate
        self.last = time.monotonic()

    def ready(self):
        """True when allow() would say yes now (without taking a token)."""
        return self.rate <= 0 or self.tokens + (time.monotonic() - self.last) * self.rate >= 1.0

    def allow(self):
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def thread_name(ident):
    """The threading name of a thread, without importing threading or running its code."""
    threading = sys.modules.get("threading")
    t = threading and getattr(threading, "_active", {}).get(ident)
    return getattr(t, "name", None) if t is not None else None


def stream(ctx, probe, stop, event):
    """Sends probe.queue until probe.reached(), the client leaves, or `stop` is set (reset,
    detach). Each tick calls probe.reopen() (ends a rate-limit pause) and, at most once a
    second, reports probe.drops() (a dict of counters) as an `<event>` event when it changed."""
    last_drops, last_report = probe.drops(), time.monotonic()
    while flush(ctx, probe.queue):
        probe.reopen()
        if probe.reached() or stop.is_set():
            flush(ctx, probe.queue)
            return
        drops = probe.drops()
        if drops != last_drops and time.monotonic() - last_report >= DROP_REPORT_EVERY:
            data = dict(drops, watch_id=probe.watch_id)
            ctx.emit({"type": "event", "event": event, "data": data})
            last_drops, last_report = drops, time.monotonic()
        stop.wait(TICK)


def flush(ctx, queue):
    """Emits everything queued, in batches; False if the client is gone."""
    while queue:
        batch = []
        while queue and len(batch) < BATCH_MAX:
            batch.append(queue.popleft())
        if not ctx.emit({"type": "batch", "items": batch}):
            return False
    return True
