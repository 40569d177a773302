# peeka agent library "instrument": see every call of a Python function in a live
# process (arguments at entry, result or exception, duration, thread).
#
# The agent executes this file in a namespace of its own: it is never imported and
# never in sys.modules. Loading it does nothing; a tool id is claimed and code is
# changed only by install(), and everything is given back by uninstall().
#
# The function's *code* is instrumented, never a module or class attribute, so every
# call is seen however the function is reached (aliases made earlier, bound methods,
# handler registries, other threads):
#   3.12+     sys.monitoring local events on the code object: PY_START, PY_RETURN, and
#             PY_UNWIND (a global event before 3.15, filtered by code); PY_RESUME too while
#             a probe on it has on_resume(call) (RESUME_EVENTS: told each time a kept
#             generator's or coroutine's frame resumes, by a send or, PY_THROW, a throw).
#             PY_THROW is global: listen_throws() hears a throw into any frame of a thread.
#   3.8-3.11  func.__code__ is swapped for a generated trampoline with the same signature
#             that calls a copy of the original function; the very same code object is
#             put back afterwards.
# Callbacks run on the target's own threads: they swallow every Exception (counted in
# probe.errors or the engine's counters), never block, never print.
import sys
import types
import _thread
import operator as _operator
from time import perf_counter_ns as _now_ns, time as _wall

REQUIRES = ("errors", "real", "names")

_get_ident = _thread.get_ident
_getframe = sys._getframe
_MONITORING = sys.version_info >= (3, 12) and hasattr(sys, "monitoring")
RESUME_EVENTS = _MONITORING         # whether a probe's on_resume(call) is ever called
_TOOL_IDS = (4, 3, 2, 1, 0, 5)      # 3 and 4 have no assigned role: try them first
_INFLIGHT_MAX = 10000               # calls in progress kept at most (abandoned generators)
_MARK = "__peeka_trampoline__"      # last constant of every trampoline: (_MARK, original code)

CO_VARARGS, CO_VARKEYWORDS, CO_NESTED = 0x04, 0x08, 0x10
CO_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR = 0x20, 0x80, 0x100, 0x200
_RESUMABLE = CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR


class InstrumentError(Exception):
    """A refusal: code is 'BAD_PATTERN', 'NOT_LOADED', 'NOT_FOUND' or 'NOT_INSTRUMENTABLE';
    str(e) is a one-line message for the user."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code


class _EmptyKwargs(dict):
    """The kwargs of every call that has none: one shared, read-only empty dict."""
    __slots__ = ()

    def _read_only(self, *args, **kwargs):
        raise TypeError("Call.kwargs is shared here; copy it before changing it")

    __setitem__ = __delitem__ = __ior__ = update = setdefault = pop = popitem = clear = _read_only


_NO_KWARGS = _EmptyKwargs()
_NOTHING = ((), _NO_KWARGS, None)   # (args, kwargs, self_obj) of a call nobody captured


# ---------------------------------------------------------------------------
# Public objects
# ---------------------------------------------------------------------------
class Target(object):
    """One function to instrument, as resolve() found it."""
    __slots__ = ("name", "func", "code", "kind", "binding", "skip_first", "arg_names")

    def __init__(self, name, func, code, binding):
        flags = code.co_flags
        self.name = name            # as the user typed it (or Class.* expanded)
        self.func = func            # the innermost Python function (decorators unwrapped)
        self.code = code            # its original code object
        self.binding = binding      # function | method | staticmethod | classmethod
        self.kind = ("async_generator" if flags & CO_ASYNC_GENERATOR else "coroutine" if flags & CO_COROUTINE
                     else "generator" if flags & (CO_GENERATOR | CO_ITERABLE_COROUTINE) else binding)
        self.skip_first = binding in ("method", "classmethod") and code.co_argcount > 0
        positional = code.co_varnames[:code.co_argcount]
        self.arg_names = positional[1:] if self.skip_first else positional

    def __repr__(self):
        return "<Target %s (%s)>" % (self.name, self.kind)


class Call(object):
    """One invocation, handed to a probe; each probe gets its own Call.

    One is made on every call of a watched function, so the engine stores only target and
    frame (plus the arguments when a probe captures them, and the timing of a call a probe
    keeps); the rest is derived when a probe reads it."""
    __slots__ = ("target", "frame", "_captured", "_state", "_start", "_t0", "_tid", "_handle", "_next")

    name = property(lambda self: self.target.name)
    arg_names = property(lambda self: self.target.arg_names)
    # Unset when no probe asked for arguments.
    args = property(lambda self: getattr(self, "_captured", _NOTHING)[0])
    kwargs = property(lambda self: getattr(self, "_captured", _NOTHING)[1])
    self_obj = property(lambda self: getattr(self, "_captured", _NOTHING)[2])
    wall_time = property(lambda self: _wall_at(self.start_ns))

    @property
    def thread_id(self):
        # Stored when a probe keeps the call; before that on_enter runs on the calling thread.
        tid = getattr(self, "_tid", None)
        if tid is None:
            tid = self._tid = _get_ident()
        return tid

    @property
    def start_ns(self):
        # A clock read costs as much as the rest of an ignored call: read on first use. For a
        # kept call it is when the probes' on_enter returned (their time is not the function's).
        start = getattr(self, "_start", None)
        if start is None:
            start = self._start = getattr(self, "_t0", None) or _now_ns()
        return start

    @property
    def state(self):
        state = getattr(self, "_state", None)
        if state is None:
            state = self._state = {}
        return state

    @state.setter
    def state(self, value):
        self._state = value


def _wall_at(ns):
    """time.time() at perf_counter_ns() == ns, from a reference pair renewed every second."""
    global _clock_ref
    ref_wall, ref_ns = _clock_ref
    if _now_ns() - ref_ns > 1000000000:
        ref_wall, ref_ns = _clock_ref = (_wall(), _now_ns())
    return ref_wall + (ns - ref_ns) / 1e9


_clock_ref = (0.0, -10 ** 12)


class Probe(object):
    """Base class for probes (any object with these attributes will do). Optional, for speed:
    `admit()` -> bool, asked before anything is captured; `acceptor(target)` -> None or a
    callable(args, kwargs, self_obj) -> bool, asked once the arguments are captured. A call
    that either declines is never built, and on_enter/on_exit do not hear of it."""
    capture_args = True
    errors = 0

    def on_enter(self, call):
        return True

    def on_exit(self, call, result, exc, duration_ns):
        pass


class Handle(object):
    """What install() returns; give it to uninstall()."""

    def __init__(self, probe, targets):
        self.probe, self.targets = probe, list(targets)
        self.records = []
        self.active = True
        self.paused = False
        self._skipped_at = 0
        self._calls_at = {}         # id(record) -> its call count when this probe joined it
        self.problems = []          # e.g. a __code__ replaced by someone else meanwhile

    def calls_seen(self):
        """Calls of this probe's functions since it was installed (declined and skipped ones
        too): the engine counts them, so probes need not count on the hot path."""
        return sum(r.calls + r.skipped - self._calls_at.get(id(r), 0) for r in self.records)

    # A probe that wants no calls for a while (its rate limit is spent) pauses: once every probe
    # on a function has paused, a call costs one attribute test. May be called from any thread:
    # a stale `all_paused` only costs a call through the slow path (which declines it), never a lost one.
    def pause(self):
        if not self.paused:
            self._skipped_at = sum(r.skipped for r in self.records)
            self.paused = True
            for r in self.records:
                r.update_paused()

    def resume(self):
        """Ends a pause; returns how many calls the engine skipped for this probe meanwhile."""
        if not self.paused:
            return 0
        self.paused = False
        for r in self.records:
            r.update_paused()
        return max(0, sum(r.skipped for r in self.records) - self._skipped_at)


# ---------------------------------------------------------------------------
# resolve(): pattern -> targets, looking only at modules already loaded
# ---------------------------------------------------------------------------
def resolve(pattern):
    """'module.func', 'module.Class.method', 'module.Outer.Inner.method' or 'module.Class.*':
    the names library's resolution, refusals as InstrumentError, each function's code before
    any trampoline of ours."""
    return [Target(f.name, f.func, f.code, f.binding)
            for f in names.resolve(pattern, InstrumentError, _original_code)]


def _original_code(func):
    """func.__code__, or the code a trampoline (ours or another engine copy's) stands for."""
    code = func.__code__
    last = code.co_consts[-1] if code.co_consts else None
    return last[1] if type(last) is tuple and len(last) == 2 and last[0] == _MARK else code


# ---------------------------------------------------------------------------
# Engine state: changed under _lock only; the callbacks read snapshots
# ---------------------------------------------------------------------------
class _Record(object):
    """One instrumented code (3.12+) or function (3.8-3.11) and the probes on it."""
    __slots__ = ("key", "target", "func", "code", "mechanism", "owners", "offers", "calls", "all_paused", "skipped",
                 "filter",
                 "pos_names", "get_pos", "kwonly", "varargs", "varkw", "simple", "skip_first", "resumable",
                 "trampoline", "plain_args", "quick", "quick_filter", "on_resume")

    def __init__(self, key, target, mechanism):
        code = target.code
        self.key, self.target, self.func, self.code, self.mechanism = key, target, target.func, code, mechanism
        self.owners = []            # [(handle, target)]
        self.offers = ()            # what the callbacks read: see refresh()
        self.calls, self.skipped, self.all_paused, self.trampoline = 0, 0, True, None
        self.filter = self.quick = self.quick_filter = None
        self.on_resume = False      # PY_RESUME is monitored for a probe's on_resume (see refresh)
        pos, _, kwonly, varargs, varkw = _signature(code)
        self.pos_names, self.kwonly, self.varargs, self.varkw = pos, kwonly, varargs, varkw
        self.get_pos = _operator.itemgetter(*pos) if len(pos) > 1 else None
        self.simple = not (kwonly or varargs or varkw)
        self.skip_first = target.skip_first
        self.resumable = bool(code.co_flags & _RESUMABLE)
        # Two or more positional parameters, nothing else, no self to split off: the arguments
        # are one itemgetter away from the frame's locals.
        self.plain_args = self.simple and not self.skip_first and self.get_pos is not None

    def refresh(self):
        """Rebuilds the snapshot the callbacks read (a new tuple: they need no lock). One offer
        per probe, a tuple unpacked by name in _begin (the cheapest read on the hot path):
        (admit: a check before anything is captured or None, accept: its acceptor for this
        target, a check on the captured arguments, or None, wants: whether it wants the
        arguments, on_enter, handle, target)."""
        offers = []
        for h, t in self.owners:
            probe = h.probe
            make = getattr(probe, "acceptor", None)
            accept = make(t) if make is not None else None
            wants = accept is not None or getattr(probe, "capture_args", True)
            offers.append((getattr(probe, "admit", None), accept, wants, probe.on_enter, h, t))
        self.offers = tuple(offers)
        self.filter = self.quick_filter = None
        if len(offers) == 1:
            self._decide_first(*offers[0])
        self.update_paused()
        on_resume = (self.resumable and self.mechanism == "monitoring"
                     and any(getattr(h.probe, "on_resume", None) is not None for h, _ in self.owners))
        if on_resume != self.on_resume and _records.get(self.key) is self:
            _monitor_code(self.code, on_resume)
            self.on_resume = on_resume

    def _decide_first(self, admit, accept, wants, on_enter, handle, target):
        """One probe that decides on the arguments alone (a watch with a condition): the
        callback checks it before anything else, so a call it declines costs the least."""
        if admit is not None or accept is None:
            return
        self.filter = accept
        if self.plain_args:
            # The same check reading the frame's locals directly, when the probe can make one.
            make = getattr(handle.probe, "quick_acceptor", None)
            quick = make(target, self.pos_names) if make is not None else None
            if quick is None:
                flt, get_pos = self.filter, self.get_pos
                quick = lambda local: flt(get_pos(local), _NO_KWARGS, None)  # noqa: E731
            self.quick_filter = quick

    def update_paused(self):
        """After a probe paused or resumed (Handle.pause/resume) or joined or left."""
        # Every probe has paused: a call costs one attribute test and a count.
        self.all_paused = paused = all(h.paused for h, _ in self.owners)
        # Quick: the filter the monitoring callback applies itself (see _mon_start).
        self.quick = None if paused else self.quick_filter


_lock = real.allocate_lock()  # built in: also taken by the agent's thread, never a gevent lock
_records = {}       # code (monitoring) or function (code swap) -> _Record
_record_of = _records.get
_handles = []
_inflight = {}      # monitoring: frame -> first Call of its invocation
_throw_listeners = {}   # monitoring: thread ident -> listen_throws()'s listener
_counters = {"engine_errors": 0, "evicted": 0, "lost": 0}
_problems = []      # messages for the user, bounded
_monitor = {"tool": None, "local_mask": 0, "global_mask": 0}


def _signature(code):
    names = code.co_varnames
    n_pos, n_kw = code.co_argcount, code.co_kwonlyargcount
    i = n_pos + n_kw
    varargs = names[i] if code.co_flags & CO_VARARGS else None
    varkw = names[i + bool(varargs)] if code.co_flags & CO_VARKEYWORDS else None
    return names[:n_pos], code.co_posonlyargcount, names[n_pos:i], varargs, varkw


def _note(message):
    if len(_problems) < 100:
        _problems.append(message)


# ---------------------------------------------------------------------------
# Entry and exit, shared by both mechanisms: the hot path, keep it lean
# ---------------------------------------------------------------------------
def _begin(rec, frame, values=None, accepted=None):
    """Offers a new call to every probe; returns the first Call kept (others chained on
    _next) or None. `values` are the parameters as a trampoline passes them; without them
    they are read from the frame, once, and only if a probe gets far enough to want them.
    `accepted`: the arguments the record's filter has already said yes to. Never raises."""
    try:
        rec.calls += 1
        captured, decided, first = accepted, accepted is not None, rec.filter
        if first is not None and not decided:   # one probe deciding on the arguments: ask it first
            captured = _capture(rec, frame, values)
            if not first(*captured):
                return None
            decided = True
        head = tail = None
        for admit, accept, wants, on_enter, handle, target in rec.offers:
            try:
                if admit is not None and not admit():
                    continue
                if wants and captured is None:
                    captured = _capture(rec, frame, values)
                if accept is not None and not decided and not accept(*captured):
                    continue
                call = Call()
                call.target = target
                call.frame = frame
                if captured is not None:
                    call._captured = captured
                keep = on_enter(call)
            except Exception:
                _probe_failed(handle.probe)
                keep = False
            if keep:
                call._handle, call._next = handle, None
                if head is None:
                    head = call
                else:
                    tail._next = call
                tail = call
        if head is not None:
            t0, tid = _now_ns(), _get_ident()
            call = head
            while call is not None:
                call._t0, call._tid = t0, tid
                call = call._next
        return head
    except Exception:
        _counters["engine_errors"] += 1
        return None


def _capture(rec, frame, values):
    """(args, kwargs, self_obj) at entry, before any line of the function ran: from the
    trampoline's (positional, *args, keyword-only, **kwargs), else from the frame's locals."""
    try:
        if values is None:
            local = frame.f_locals
            if rec.get_pos is not None:
                args = rec.get_pos(local)
            else:
                args = (local[rec.pos_names[0]],) if rec.pos_names else ()
            if not rec.simple:
                values = (args, rec.varargs and local[rec.varargs], [local[n] for n in rec.kwonly],
                          rec.varkw and local[rec.varkw])
        else:
            args = values[0]
        self_obj = None
        if rec.skip_first:
            self_obj, args = args[0], args[1:]
        if rec.simple:
            return args, _NO_KWARGS, self_obj
        _, varargs, kwonly, varkw = values
        if varargs:
            args = args + tuple(varargs)
        kwargs = dict(zip(rec.kwonly, kwonly))
        if varkw:
            kwargs.update(varkw)
        return args, kwargs, self_obj
    except Exception:
        _counters["engine_errors"] += 1
        return _NOTHING


def _finish(call, result, exc):
    """Reports the end of an invocation to the probes that kept it. Never raises."""
    try:
        end = _now_ns()
        while call is not None:
            handle = call._handle
            if handle.active:       # an uninstalled probe hears no more (a generator may outlive it)
                try:
                    handle.probe.on_exit(call, result, exc, end - call._t0)
                except Exception:
                    _probe_failed(handle.probe)
            call.frame = None
            call = call._next
    except Exception:
        _counters["engine_errors"] += 1


def _probe_failed(probe):
    try:
        probe.errors = getattr(probe, "errors", 0) + 1
    except Exception:
        _counters["engine_errors"] += 1


# ---------------------------------------------------------------------------
# 3.12+: sys.monitoring
# ---------------------------------------------------------------------------
# The try blocks cost nothing on 3.11+; they keep a MemoryError or the like out of the target.
def _mon_start(code, offset):
    try:
        rec = _record_of(code)
        if rec is None:
            return
        quick = rec.quick
        if quick is not None:
            # The commonest conditional watch, written out: positional arguments only, checked
            # before anything else is made (every attribute read here costs on 3.12).
            frame = _getframe(1)
            local = frame.f_locals
            if not quick(local):
                rec.calls += 1
                return
            head = _begin(rec, frame, None, (rec.get_pos(local), _NO_KWARGS, None))
        elif rec.all_paused:
            rec.skipped += 1
            return
        else:
            frame = _getframe(1)    # the instrumented frame: this callback is called from it
            head = _begin(rec, frame)
        # CPython calls us from that frame, so the code always matches; checked only for a
        # kept call (f_code costs ~70 ns on 3.12) to keep the table right whatever happens.
        if head is not None and frame.f_code is code:
            _inflight[frame] = head
            if rec.resumable and len(_inflight) > _INFLIGHT_MAX:
                _evict_oldest()     # only generators and coroutines can be abandoned
    except Exception:
        _counters["engine_errors"] += 1


def _mon_return(code, offset, value):
    try:
        if _inflight:               # nothing kept anywhere: nothing to look up
            head = _inflight.pop(_getframe(1), None)
            if head is not None:
                _finish(head, value, None)
    except Exception:
        _counters["engine_errors"] += 1


def _mon_resume(code, offset):
    # Only for codes a probe with on_resume watches (see _Record.refresh).
    try:
        if _inflight:
            _resumed(_getframe(1))
    except Exception:
        _counters["engine_errors"] += 1


def _mon_throw(code, offset, exc):
    # Global: every throw() into any generator or coroutine (rare: cancellations, close()).
    try:
        if _throw_listeners:
            listener = _throw_listeners.get(_get_ident())
            if listener is not None:
                listener()
        if _inflight:
            rec = _record_of(code)
            if rec is not None and rec.on_resume:
                _resumed(_getframe(1))
    except Exception:
        _counters["engine_errors"] += 1


def listen_throws(listener):
    """3.12+: listener() is called when an exception is thrown into any generator or coroutine
    on the calling thread (before that frame resumes), until listen_throws(None)."""
    if listener is None:
        _throw_listeners.pop(_get_ident(), None)
    else:
        _throw_listeners[_get_ident()] = listener


def _resumed(frame):
    """A kept call's frame resumes: its probes' on_resume(call)."""
    call = _inflight.get(frame)
    while call is not None:
        handle = call._handle
        if handle.active:
            try:
                handle.probe.on_resume(call)
            except Exception:
                _probe_failed(handle.probe)
        call = call._next


def _mon_unwind(code, offset, exc):
    # Global before 3.15: called for every frame any exception leaves, so others are rejected
    # first. The exception is the argument (sys.exc_info() here is the *handled* one).
    # Never return sys.monitoring.DISABLE: it raises for this event.
    try:
        if _inflight and code in _records:
            head = _inflight.pop(_getframe(1), None)
            if head is not None:
                _finish(head, None, exc)
    except Exception:
        _counters["engine_errors"] += 1


def _evict_oldest():
    try:
        _inflight.pop(next(iter(_inflight)), None)
        _counters["evicted"] += 1
    except Exception:
        pass                        # another thread changed the table meanwhile


def claim_tool_id():
    """A free sys.monitoring tool id, claimed as "peeka": other debuggers or profilers may hold
    some, which are left alone. Also what a command with events of its own claims (line)."""
    mon = sys.monitoring
    for tool in _TOOL_IDS:
        if mon.get_tool(tool) is not None:
            continue
        try:
            mon.use_tool_id(tool, "peeka")
        except ValueError:
            continue                # taken just now by someone else
        return tool
    held = ", ".join("%d=%s" % (i, mon.get_tool(i)) for i in range(6) if mon.get_tool(i) is not None)
    raise InstrumentError("NOT_INSTRUMENTABLE", "every sys.monitoring tool id is taken (%s)" % held)


def _claim_tool():
    """The engine's tool id, with its callbacks."""
    mon = sys.monitoring
    ev = mon.events
    tool = _monitor["tool"] = claim_tool_id()   # from now on _release_tool() gives it back whatever happens
    for event, callback in ((ev.PY_START, _mon_start), (ev.PY_RETURN, _mon_return),
                            (ev.PY_UNWIND, _mon_unwind), (ev.PY_RESUME, _mon_resume),
                            (ev.PY_THROW, _mon_throw)):
        mon.register_callback(tool, event, callback)
    unwind_is_local = sys.version_info >= (3, 15)   # checked again per code in _monitor_code
    _monitor["local_mask"] = ev.PY_START | ev.PY_RETURN | (ev.PY_UNWIND if unwind_is_local else 0)
    _monitor["global_mask"] = ev.PY_THROW | (0 if unwind_is_local else ev.PY_UNWIND)
    mon.set_events(tool, _monitor["global_mask"])


def _monitor_code(code, on_resume=False):
    mon, tool = sys.monitoring, _monitor["tool"]
    unwind, resume = mon.events.PY_UNWIND, mon.events.PY_RESUME if on_resume else 0
    try:
        mon.set_local_events(tool, code, _monitor["local_mask"] | resume)
    except ValueError:
        if not _monitor["local_mask"] & unwind:
            raise
        # This build refuses a local PY_UNWIND: fall back to the global event.
        _monitor["local_mask"] &= ~unwind
        _monitor["global_mask"] |= unwind
        mon.set_events(tool, _monitor["global_mask"])
        mon.set_local_events(tool, code, _monitor["local_mask"] | resume)


def _unmonitor(rec):
    try:
        sys.monitoring.set_local_events(_monitor["tool"], rec.code, 0)
    except Exception as e:
        _note("removing the events of %s: %s" % (rec.target.name, e))
    for frame in [f for f in list(_inflight) if f.f_code is rec.code]:
        _inflight.pop(frame, None)  # their ends will not be reported any more


def _release_tool():
    mon, tool = sys.monitoring, _monitor["tool"]
    if tool is None:
        return
    _monitor["tool"] = None
    ev = mon.events
    steps = [(mon.set_events, (tool, 0))]
    steps += [(mon.register_callback, (tool, e, None))
              for e in (ev.PY_START, ev.PY_RETURN, ev.PY_UNWIND, ev.PY_RESUME, ev.PY_THROW)]
    steps.append((mon.free_tool_id, (tool,)))
    for step, args in steps:        # each one even if another fails
        try:
            step(*args)
        except Exception as e:
            _note("releasing sys.monitoring tool %d: %s" % (tool, e))
    _inflight.clear()
    _throw_listeners.clear()


# ---------------------------------------------------------------------------
# 3.8-3.11: code swap. The trampoline keeps the signature (defaults stay on the function
# object), the number of free variables (__code__ assignment requires it) and the names;
# it reaches the engine through its constants only: E=_begin, X=_finish, F=the copy of the
# original function, R=the record, G=sys._getframe.
# ---------------------------------------------------------------------------
_HEAD = '''
def __peeka_outer__():
    %(cells)s
    %(async)sdef __peeka_tramp__(%(params)s):
        %(nonlocal)s
        __peeka_E, __peeka_X, __peeka_F, __peeka_R, __peeka_G = "__peeka_consts__"
        if __peeka_R.all_paused:
            __peeka_R.skipped += 1
            __peeka_c = None
        else:
            __peeka_c = __peeka_E(__peeka_R, __peeka_G(), (%(values)s))
'''
_BODY = '''
        if __peeka_c is None:
            return %(call)s
        try:
            __peeka_r = %(call)s
        except BaseException as __peeka_e:
            __peeka_X(__peeka_c, None, __peeka_e)
            raise
        __peeka_X(__peeka_c, __peeka_r, None)
        return __peeka_r
    return __peeka_tramp__
'''
# Async generators: asend/athrow/aclose are forwarded by hand. Limits: ag_await/ag_frame
# show the trampoline, and athrow() forwards the exception instance (its traceback is ours).
_BODY_ASYNC_GEN = '''
        __peeka_g = %(call)s
        try:
            __peeka_v = await __peeka_g.asend(None)
            while True:
                try:
                    __peeka_s = yield __peeka_v
                except GeneratorExit:
                    await __peeka_g.aclose()
                    raise
                except BaseException as __peeka_x:
                    __peeka_v = await __peeka_g.athrow(__peeka_x)
                else:
                    __peeka_v = await __peeka_g.asend(__peeka_s)
        except StopAsyncIteration:
            if __peeka_c is not None:
                __peeka_X(__peeka_c, None, None)
        except BaseException as __peeka_e:
            if __peeka_c is not None:
                __peeka_X(__peeka_c, None, __peeka_e)
            raise
    return __peeka_tramp__
'''


def _trampoline_source(code):
    pos, n_posonly, kwonly, varargs, varkw = _signature(code)
    for n in pos + kwonly + tuple(x for x in (varargs, varkw) if x):
        if not n.isidentifier() or n.startswith("__peeka_"):
            raise InstrumentError("NOT_INSTRUMENTABLE", "parameter name %r cannot be forwarded" % n)
    star = ["*" + varargs] if varargs else ["*"] if kwonly else []
    params = list(pos[:n_posonly]) + ["/"] * bool(n_posonly) + list(pos[n_posonly:]) + star + list(kwonly)
    forward = list(pos) + (["*" + varargs] if varargs else []) + ["%s=%s" % (k, k) for k in kwonly]
    if varkw:
        params.append("**" + varkw)
        forward.append("**" + varkw)
    call = "__peeka_F(%s)" % ", ".join(forward)
    free = ["__peeka_fv%d" % i for i in range(len(code.co_freevars))]
    fields = {"params": ", ".join(params), "async": "",
              "values": "(%s), %s, (%s), %s" % ("".join(n + ", " for n in pos), varargs or "()",
                                                "".join(n + ", " for n in kwonly), varkw or "None"),
              "cells": " = ".join(free + ["None"]) if free else "pass",
              "nonlocal": "nonlocal " + ", ".join(free) if free else "pass"}
    body = _BODY
    if code.co_flags & CO_ASYNC_GENERATOR:
        fields["async"], body = "async ", _BODY_ASYNC_GEN
    elif code.co_flags & CO_COROUTINE:
        fields["async"], call = "async ", "await " + call
    elif code.co_flags & (CO_GENERATOR | CO_ITERABLE_COROUTINE):
        call = "(yield from %s)" % call
    return _HEAD % fields + body % {"call": call}


def _build_trampoline(rec):
    func, code = rec.func, rec.code
    module = compile(_trampoline_source(code), "<peeka-trampoline>", "exec", 0, True)
    outer = [c for c in module.co_consts if isinstance(c, types.CodeType)][0]
    tramp = [c for c in outer.co_consts if isinstance(c, types.CodeType)][0]
    copy = types.FunctionType(code, func.__globals__, func.__name__, func.__defaults__, func.__closure__)
    copy.__kwdefaults__, copy.__qualname__, copy.__module__ = func.__kwdefaults__, func.__qualname__, func.__module__
    engine = (_begin, _finish, copy, rec, _getframe)
    consts = tuple(engine if c == "__peeka_consts__" else c for c in tramp.co_consts) + ((_MARK, code),)
    keep = CO_NESTED | CO_ITERABLE_COROUTINE
    changes = {"co_consts": consts, "co_name": code.co_name, "co_filename": code.co_filename,
               "co_firstlineno": code.co_firstlineno, "co_flags": (tramp.co_flags & ~keep) | (code.co_flags & keep)}
    if hasattr(code, "co_qualname"):
        changes["co_qualname"] = code.co_qualname
    tramp = tramp.replace(**changes)
    if len(tramp.co_freevars) != len(code.co_freevars):
        raise InstrumentError("NOT_INSTRUMENTABLE", "cannot build a trampoline for %s" % rec.target.name)
    return _flat_lines(tramp)


def _flat_lines(code):
    """Puts every instruction of the trampoline on the original 'def' line: its frame in a
    traceback shows the function's header, never an unrelated line of its body."""
    if sys.version_info < (3, 10):
        return code.replace(co_lnotab=b"")
    if sys.version_info < (3, 11):      # (bytes, line delta) pairs, line delta 0
        size, most, entry = len(code.co_code), 254, lambda n: (n, 0)
    else:                               # 3.11 locations: "no column" entries (kind 13), line delta 0
        size, most, entry = len(code.co_code) // 2, 8, lambda n: (0xE8 | (n - 1), 0)
    table = []
    while size > 0:
        table.extend(entry(min(size, most)))
        size -= most
    try:
        return code.replace(co_linetable=bytes(table))
    except Exception:
        return code


def _swap_in(rec):
    func = rec.func
    if func.__code__ is not rec.code:
        why = ("is instrumented by another copy of peeka's engine (peeka reset --all)"
               if _original_code(func) is rec.code else "changed after it was resolved; try again")
        raise InstrumentError("NOT_INSTRUMENTABLE", "%s %s" % (rec.target.name, why))
    rec.trampoline = _build_trampoline(rec)
    func.__code__ = rec.trampoline


def _swap_out(rec):
    if rec.func.__code__ is rec.trampoline:
        rec.func.__code__ = rec.code
        return None
    _counters["lost"] += 1
    return "%s: its __code__ was replaced by someone else while watched; left as it is" % rec.target.name


# ---------------------------------------------------------------------------
# install / uninstall / status
# ---------------------------------------------------------------------------
def install(targets, probe):
    """Instruments each target for `probe`; a code already instrumented is shared, and every
    probe on it gets every call."""
    handle = Handle(probe, targets)
    with _lock:
        try:
            for target in targets:
                rec = _records.get(target.code if _MONITORING else target.func) or _activate(target)
                if rec not in handle.records:
                    handle._calls_at[id(rec)] = rec.calls + rec.skipped
                    rec.owners.append((handle, target))
                    rec.refresh()
                    handle.records.append(rec)
        except BaseException as e:
            _detach(handle)
            if isinstance(e, InstrumentError):
                raise
            raise InstrumentError("NOT_INSTRUMENTABLE", "cannot instrument: %s: %s" % (type(e).__name__, e))
        _handles.append(handle)
    if not _warmed:
        _warm_up()
    return handle


class _DryRun(Probe):
    capture_args = False


def _warm_up_call(x):
    return x


def _warm_up():
    """Calls a function of ours through the engine once, on the installing (agent) thread: the
    one-time costs of a first call (the callbacks' and the trampoline's code specialized,
    their caches filled) are paid here, not by the first call a probe times."""
    _warmed.append(True)
    try:
        target = Target("peeka.warm_up", _warm_up_call, _warm_up_call.__code__, "function")
        handle = install([target], _DryRun())
        try:
            for i in range(3):
                _warm_up_call(i)
        finally:
            uninstall(handle)
    except Exception as e:
        _note("warming up the engine: %s" % e)


_warmed = []        # non-empty once _warm_up() ran


def _activate(target):
    if _MONITORING:
        if _monitor["tool"] is None:
            _claim_tool()
        rec = _Record(target.code, target, "monitoring")
    else:
        rec = _Record(target.func, target, "code-swap")
    # Listed before the code changes and unlisted after it is restored (_deactivate): a child
    # forked in between by another thread finds every changed code in _records (after_fork_in_child).
    _records[rec.key] = rec
    try:
        if _MONITORING:
            _monitor_code(rec.code)
        else:
            _swap_in(rec)
    except BaseException:
        del _records[rec.key]
        raise
    return rec


def uninstall(handle):
    """Removes this probe; a code left with no probe loses its instrumentation completely."""
    with _lock:
        _detach(handle)


def uninstall_all():
    """Removes everything (detach). Returns how many functions were restored."""
    with _lock:
        restored = sum(_detach(h) for h in list(_handles))
        restored += sum(_deactivate(rec, None) for rec in list(_records.values()))
        if _MONITORING:
            _release_tool()
        return restored


def _detach(handle):
    restored = 0
    handle.active = False
    for rec in handle.records:
        rec.owners = [(h, t) for h, t in rec.owners if h is not handle]
        rec.refresh()
        if not rec.owners:
            restored += _deactivate(rec, handle)
    handle.records = []
    if handle in _handles:
        _handles.remove(handle)
    if _MONITORING and not _records:
        _release_tool()
    return restored


def _deactivate(rec, handle):
    if _records.get(rec.key) is not rec:
        return 0
    rec.owners, rec.offers, rec.all_paused, rec.quick = [], (), True, None
    if rec.mechanism == "monitoring":
        _unmonitor(rec)
        del _records[rec.key]
        return 1
    problem = _swap_out(rec)
    del _records[rec.key]
    if problem is None:
        return 1
    _note(problem)
    if handle is not None:
        handle.problems.append(problem)
    return 0


# ---------------------------------------------------------------------------
# fork(): a child starts with none of it
# ---------------------------------------------------------------------------
def after_fork_in_child():
    """Called by the agent's at-fork hook in a child forked from this process, on the thread
    that forked (the only one the child has): every function gets its own code back, the tool
    ids are freed, every probe is made inert. The child's copies only: the parent's watches go
    on. Without this the child would pay for every call of a watched function, for its life.

    An agent thread may have held _lock at the fork (an install or uninstall in progress) and
    no longer exists to release it: the lock is replaced, never taken. The tables are as that
    thread left them between two bytecodes; _activate lists a record before it changes the
    code and _deactivate unlists it after the code is restored, so every changed code is here."""
    global _lock
    _lock = real.allocate_lock()
    for handle in list(_handles):
        handle.active = False
        forget = getattr(handle.probe, "after_fork_in_child", None)
        if forget is not None:
            try:
                forget()
            except Exception:
                _counters["engine_errors"] += 1
    del _handles[:]
    for rec in list(_records.values()):
        rec.offers, rec.all_paused, rec.quick = (), True, None
        if rec.mechanism == "monitoring":
            _unmonitor(rec)
        elif rec.trampoline is not None:
            _swap_out(rec)
    _records.clear()
    if _MONITORING:
        _release_tool()
        _release_tools_named_peeka()


def _release_tools_named_peeka():
    """A tool id whose release was under way at the fork is no longer in _monitor: by name."""
    mon = sys.monitoring
    for tool in range(6):
        if mon.get_tool(tool) == "peeka":
            _monitor["tool"] = tool
            _release_tool()


def status():
    """One entry per instrumented function (reset --list)."""
    with _lock:
        return [{"name": rec.target.name, "names": sorted(set(t.name for _, t in rec.owners)),
                 "kind": rec.target.kind, "probes": len(rec.owners), "mechanism": rec.mechanism,
                 "calls": rec.calls + rec.skipped} for rec in _records.values()]


def stats():
    """Engine health: exceptions swallowed, evictions, calls in flight, tool id, problems."""
    with _lock:
        return dict(_counters, in_flight=len(_inflight), tool_id=_monitor["tool"], problems=list(_problems))


def resolve_for_command(pattern):
    """resolve() for a command snippet: failures become the CommandError of the `errors` library
    it requires, with the code the CLI shows."""
    if not isinstance(pattern, str) or not pattern:
        raise errors.CommandError("a function pattern is required, e.g. myapp.orders.Order.total",
                                  code="BAD_ARGS")
    try:
        return resolve(pattern)
    except InstrumentError as e:
        raise errors.CommandError(str(e), code=e.code)
