# peeka agent library "observe": what the instrumenting commands (watch, stack,
# monitor, trace) share, so each of them is only its probe and its observation.
#
#   Observation     the life of one observation in the agent: resolve the pattern,
#                   compile the condition, install the probe, list it in the "watches"
#                   state entry (what `reset` lists and stops), the <command>_started
#                   event, following it until -n, cancel, a client that leaves, reset or
#                   detach, then uninstall and the <command>_stopped event with the summary.
#   ObservingProbe  the probe base: the condition's error counters, its cost stop, -n.
#   StreamingProbe  a probe that sends one observation per call it accepts: rate limit,
#                   bounded queue, drop counters, pausing the engine while it wants no calls,
#                   and the loop that drains the queue to the client.
#
# Pausing, the whole vocabulary: a probe that wants no calls for a while (its rate limit
# is spent, -n reached, the condition stopped for its cost) calls pause(); the engine then
# skips its calls at the cost of a count (instrument.Handle.pause). resume() ends a pause
# and returns how many calls were skipped meanwhile, so drops stay exact.
import collections
import sys
import time

REQUIRES = ("real", "reflect", "threads")  # real: the interpreter's own locks, even under gevent

BATCH_MAX = 512          # observations per frame
TICK = 0.005             # how often a queue is drained (s): bounds call-to-line latency
DROP_REPORT_EVERY = 1.0  # at most one drop event per second
_EXIT_NAMES = frozenset(("cost", "result", "exception"))  # what only the end of a call knows


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
    """The threading name of a thread, without importing threading or running its code; the
    main thread is "MainThread" also in a process that never imported threading (as `thread`
    names it)."""
    threading = sys.modules.get("threading")
    active = reflect.module_dict(threading).get("_active") if threading is not None else None
    t = active.get(ident) if type(active) is dict else None
    name = reflect.fields(t).get("_name") if t is not None else None  # not .name: a subclass's
    if type(name) is str:
        return name
    return "MainThread" if ident == _main_ident() else None


_main = []  # the main thread's ident, found once: it stays the same while we are loaded


def _main_ident():
    if not _main:
        _main.append(threads.main_ident(sys._current_frames()))
    return _main[0]


_ASYNC_KINDS = ("coroutine", "async_generator")


def task_name():
    """The name of the asyncio task running on this thread now, or None: read from asyncio's
    own tables, never importing asyncio, and running no code of the target (a loop class with
    its own __hash__ or __eq__, a Task class with its own get_name: None)."""
    try:
        tables = _task_tables[0] if _task_tables else _find_task_tables()
        if tables is None:
            return None
        running_loop, current_task, current_tasks, stdlib_get_name = tables
        loop = running_loop()
        if loop is None:
            return None
        plain = _plain_loop_types.get(type(loop))
        if plain is None:
            plain = _plain_loop_types[type(loop)] = (type(loop).__hash__ is object.__hash__
                                                     and type(loop).__eq__ is object.__eq__)
        if not plain:
            return None     # looking the loop up would run its class's __hash__ or __eq__
        task = current_task(loop) if current_task is not None else current_tasks.get(loop)
        get_name = _stdlib_get_name.get(type(task))
        if get_name is None and task is not None:
            found = getattr(type(task), "get_name", None)
            get_name = _stdlib_get_name[type(task)] = found if found in stdlib_get_name else False
        return get_name(task) if get_name else None
    except Exception:
        return None


_task_tables = []        # once asyncio is loaded: what task_name() reads
_plain_loop_types = {}   # loop class -> whether it keeps object's __hash__ and __eq__
_stdlib_get_name = {}    # task class -> asyncio's own get_name, or False (a class of the target's)


def _find_task_tables():
    """(running loop getter, current_task(loop) or None, the current-tasks dict, the stdlib Task
    classes' get_name), or None while asyncio is not loaded. 3.12+ has a C current_task (3.14+:
    the only table is the thread state); before, the dict of the task running per loop."""
    tasks, events = sys.modules.get("asyncio.tasks"), sys.modules.get("asyncio.events")
    if tasks is None or events is None:
        return None
    accelerated = sys.modules.get("_asyncio")
    current_task = vars(accelerated).get("current_task") if accelerated is not None else None
    stdlib_get_name = tuple(getattr(vars(tasks).get(k), "get_name", None) for k in ("_CTask", "_PyTask"))
    tables = (vars(events)["_get_running_loop"], current_task, vars(tasks).get("_current_tasks", {}),
              stdlib_get_name)
    _task_tables.append(tables)
    return tables


def reads_exit(cond):
    """Whether a compiled condition reads what only the end of a call knows (cost, result,
    exception): such a condition is decided at exit, any other at entry."""
    return cond is not None and bool(set(cond.names) & _EXIT_NAMES)


class ObservingProbe(object):
    """The base of the instrumenting commands' probes.

    For the engine (instrument.install) a probe has `capture_args`, `errors` (the engine
    counts the exceptions of the callbacks there), on_enter(call) -> keep it?, and
    on_exit(call, result, exc, duration_ns); optionally admit() and acceptor(target).

    For Observation it has `handle` (set once installed), `count` (what -n counts: accepted
    calls, or monitor's cycles), `times` (-n, -1: no limit), reached(), `too_costly`,
    `condition_error`, stop_reason(), started_data(observation), follow(ctx, stop),
    on_stop() (before uninstalling) and summary(observation)."""
    capture_args = True

    def __init__(self, cond, times):
        self.cond = cond
        self.times = int(times)
        self.count = 0
        self.errors = 0
        self.condition_errors = 0
        self.condition_error = None
        self.too_costly = False  # the condition kept being cut off by its budget: the observation stops
        self.handle = None       # instrument.Handle, set by Observation once installed

    def on_enter(self, call):
        return True

    def on_exit(self, call, result, exc, duration_ns):
        pass

    def reached(self):
        """-n reached, or the condition stopped for its cost: nothing more is wanted."""
        return 0 <= self.times <= self.count or self.too_costly

    def stop_reason(self):
        """Why the observation ended: -n reached, the condition stopped for its cost, or a stop."""
        return "condition_too_costly" if self.too_costly else "times" if self.reached() else "stopped"

    # -- the condition -----------------------------------------------------
    def matches(self, call, result, exc, duration_ns):
        """The condition on a call (duration_ns None at entry). An error is counted and
        reported, never raised into the target."""
        if self.too_costly:
            return False
        try:
            return self.cond.evaluate_call(call.arg_names, call.args, call.kwargs, call.self_obj, result, exc,
                                           None if duration_ns is None else duration_ns / 1e6)
        except Exception as e:  # ConditionEvalError
            return self.failed(str(e))

    def failed(self, message):
        """A condition error (also the callback of a compiled acceptor): counted; once the
        condition keeps being cut off by its budget, the observation stops. Returns False."""
        self.condition_errors += 1
        self.condition_error = message
        if self.cond.too_costly():
            self.too_costly = True
            self.pause()
        return False

    # -- pausing -------------------------------------------------------------
    def pause(self):
        """No calls wanted for now: the engine skips them, counting them (any thread)."""
        if self.handle is not None:
            self.handle.pause()

    def resume(self):
        """Ends a pause; returns how many calls the engine skipped meanwhile (0 if none)."""
        h = self.handle
        return h.resume() if h is not None else 0

    def after_fork_in_child(self):
        """In a child forked while this probe was installed (instrument.after_fork_in_child):
        it is uninstalled there and wants nothing more, whatever still reaches it; the
        observation ends as at a stop (on_stop: e.g. trace's profile function, set on the
        thread that forked if it was inside a traced call, removes itself)."""
        self.times, self.count = 0, 0
        self.on_stop()

    # -- what Observation asks ---------------------------------------------
    def follow(self, ctx, stop):
        """Runs in the call's thread until the observation ends (`stop`: cancel, reset, detach)."""
        stop.wait()

    def on_stop(self):
        """The observation ended; its instrumentation is removed next."""

    def started_data(self, observation):
        return {"watch_id": observation.id, "pattern": observation.pattern, "functions": observation.functions,
                "condition": observation.condition}

    def summary(self, observation):
        raise NotImplementedError


class StreamingProbe(ObservingProbe):
    """A probe that sends an observation (a dict) for each call it accepts, numbered 1, 2, ...
    in `count`. A subclass decides in its callbacks, takes a rate-limit token with
    take_token(), checks room() before building an observation and hands it to publish().
    The agent thread drains `queue` every TICK (follow()), ends a rate-limit pause once a
    token is there again, and reports the drop counters (drops()) when they change."""
    QUEUE_MAX = 10000                 # observations waiting to be sent; beyond: dropped and counted
    DROPPED_EVENT = "watch_dropped"   # the event that reports drops

    def __init__(self, cond, times, rate, observation_id):
        ObservingProbe.__init__(self, cond, times)
        self.watch_id = observation_id
        self.rate = RateLimit(rate)
        self.queue = collections.deque()
        self.rate_dropped = 0
        self.queue_dropped = 0
        self.lock = real.allocate_lock()  # taken by target threads (greenlets) and the agent

    # -- target threads --------------------------------------------------------
    def take_token(self):
        """The rate limit: True if this call may be observed; a refused call is a rate drop."""
        if self.rate.allow():
            return True
        self.rate_dropped += 1
        return False

    def room(self):
        """Whether the queue has room; a call that finds none is a queue drop."""
        if len(self.queue) < self.QUEUE_MAX:
            return True
        self.queue_dropped += 1
        return False

    def publish(self, observation):
        """Numbers and queues an observation, unless -n was reached meanwhile. Reaching -n
        pauses: the next calls cost nothing until the observation is uninstalled."""
        with self.lock:
            if self.reached():
                return
            self.count += 1
            observation["count"] = self.count
            self.queue.append(observation)
            if self.reached():
                self.pause()

    def after_fork_in_child(self):
        """Nothing sends this queue in the child; a thread of the parent's may have held the
        lock at the fork (it does not exist in the child to release it): both are replaced."""
        ObservingProbe.after_fork_in_child(self)
        self.lock = real.allocate_lock()
        self.queue = collections.deque()

    # -- the agent thread ------------------------------------------------------
    def drops(self):
        """The counters a drop event reports."""
        return {"rate_dropped": self.rate_dropped, "queue_dropped": self.queue_dropped,
                "condition_errors": self.condition_errors, "condition_error": self.condition_error}

    def resume_when_ready(self, final=False):
        """Every tick: ends a rate-limit pause once a token is there again (`final`: the
        observation ends), counting the calls skipped meanwhile as rate drops. A pause for
        -n or for the condition's cost lasts."""
        h = self.handle
        if h is not None and h.paused and not self.reached() and (final or self.rate.ready()):
            self.rate_dropped += self.resume()

    def follow(self, ctx, stop):
        """Sends the queue until reached(), the client leaves, or `stop` is set, with at most
        one DROPPED_EVENT a second when the drop counters changed."""
        last_drops, last_report = self.drops(), time.monotonic()
        while flush(ctx, self.queue):
            self.resume_when_ready()
            if self.reached() or stop.is_set():
                flush(ctx, self.queue)
                return
            drops = self.drops()
            if drops != last_drops and time.monotonic() - last_report >= DROP_REPORT_EVERY:
                data = dict(drops, watch_id=self.watch_id)
                ctx.emit({"type": "event", "event": self.DROPPED_EVENT, "data": data})
                last_drops, last_report = drops, time.monotonic()
            stop.wait(TICK)

    def on_stop(self):
        self.resume_when_ready(final=True)  # counts what a pause skipped



class CallProbe(StreamingProbe):
    """One observation per call of the functions, at entry (`on_entry`) and/or when it
    returns (`on_success`) or raises (`on_failure`): watch and stack. A subclass may extend
    observation(). A condition that needs nothing from the exit is decided at entry, on the
    captured arguments (acceptor(): compiled, before the engine builds the call); any other
    at the moment the call is shown (consider())."""

    def __init__(self, ser, observation, args, on_entry, on_success, on_failure):
        StreamingProbe.__init__(self, observation.cond, args.get("times", -1), args.get("rate", 1000),
                                observation.id)
        self.ser = ser
        self.depth = int(args.get("depth") or 2)
        self.on_entry, self.on_success, self.on_failure = on_entry, on_success, on_failure
        self.decide_at_entry = not reads_exit(self.cond)
        if self.cond is not None and self.decide_at_entry:
            self.admit = None    # the acceptor decides: one call fewer per call

    def summary(self, observation):
        return dict({"watch_id": observation.id, "pattern": observation.pattern,
                     "observations": self.count, "calls": observation.calls}, **self.drops(),
                    probe_errors=self.errors, seconds=observation.seconds(), reason=self.stop_reason())

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
        if self.rate.allow():  # take_token() written out: this runs for every call
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
        return self.cond.acceptor(_positions(target), self.take_token, self.failed)

    def quick_acceptor(self, target, local_names):
        """acceptor() reading a function's positional parameters straight from its frame's
        locals (the engine asks when it can use one); None when the condition needs more."""
        if self.cond is None or not self.decide_at_entry:
            return None
        return self.cond.acceptor(_positions(target), self.take_token, self.failed, tuple(local_names))

    def on_enter(self, call):
        if self.on_entry:
            if self.decide_at_entry:  # admit() or the acceptor has decided and taken the token
                self.record(call, "AtEnter", None, None, 0)
            else:
                self.consider(call, "AtEnter", None, None, None)
        return self.on_success or self.on_failure

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
        if self.take_token():
            self.record(call, location, result, exc, duration_ns)

    def record(self, call, location, result, exc, duration_ns):
        if self.room():
            self.publish(self.observation(call, location, result, exc, duration_ns or 0))

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
            "thread": {"id": call.thread_id, "name": thread_name(call.thread_id)},
        }
        if call.target.kind in _ASYNC_KINDS:
            obs["task"] = task_name()   # on the call's own thread, in its task
        return obs


def _positions(target):
    """Argument name -> index in the call's args, for a compiled condition."""
    return dict((n, i) for i, n in enumerate(target.arg_names))


def flush(ctx, queue):
    """Emits everything queued, in batches; False if the client is gone."""
    while queue:
        batch = []
        while queue and len(batch) < BATCH_MAX:
            batch.append(queue.popleft())
        if not ctx.emit({"type": "batch", "items": batch}):
            return False
    return True


class Observation(object):
    """One watch, stack, monitor or trace in the agent, from its arguments to its summary:

        observation = Observation(ctx, "watch", args)   # resolves the pattern, compiles --condition
        probe = MyProbe(observation.cond, ...)          # an ObservingProbe
        return observation.run(probe)                   # the summary, also sent as <command>_stopped

    While it runs it is listed in the agent's "watches" state entry: `reset` lists it and
    stops it by setting its `stop` (the call's cancel event), after which it removes its own
    instrumentation; detach removes every instrumentation at once (on_detach("instrument"))."""

    def __init__(self, ctx, command, args):
        self.ctx, self.command = ctx, command
        self.instrument = ctx.agent.lib("instrument")
        self.pattern = args.get("pattern")
        self.condition = args.get("condition")
        self.targets = self.instrument.resolve_for_command(self.pattern)
        self.cond = ctx.agent.lib("condition").compile_for_command(self.condition, self.targets,
                                                                    args.get("strict"))
        self.id = "%s_%06x" % (command, id(ctx) & 0xFFFFFF)
        self.functions = [t.name for t in self.targets]
        self.calls = 0           # calls of the functions while installed (the engine counts them)
        self.started = None

    def run(self, probe):
        ctx, inst = self.ctx, self.instrument
        stop = ctx.cancelled
        registry = ctx.agent.state.setdefault("watches", {})
        ctx.agent.on_detach("instrument", inst.uninstall_all)
        handle = probe.handle = inst.install(self.targets, probe)
        registry[self.id] = {"watch_id": self.id, "command": self.command, "pattern": self.pattern,
                             "functions": self.functions, "stop": stop}
        self.started = time.time()
        try:
            self.emit_event("started", probe.started_data(self))
            probe.follow(ctx, stop)
        finally:
            # counted before the probe stops taking calls: a call skipped after that would be
            # in `calls` but never evaluated by the condition
            self.calls = handle.calls_seen()
            probe.on_stop()
            inst.uninstall(handle)
            registry.pop(self.id, None)
        summary = probe.summary(self)
        message = {"message": probe.cond.stop_message(probe.condition_error)} if probe.too_costly else {}
        self.emit_event("stopped", summary, message)
        return summary

    def seconds(self):
        return round(time.time() - self.started, 3)

    def emit_event(self, what, data, extra=None):
        event = {"type": "event", "event": "%s_%s" % (self.command, what), "data": data}
        if extra:
            event.update(extra)
        return self.ctx.emit(event)
