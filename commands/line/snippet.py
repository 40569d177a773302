# line: the local variables each time one source line is about to run. Runs in the agent.
#
# Where: `file.py:N` (the functions, methods and their nested code of the loaded modules
# whose file that is) or `module.func:N` (that function and the code nested in it). The line
# must start an instruction of one of those code objects; module-level code is not probed (it
# ran at import). Only the code that holds the line pays:
#   3.12+     sys.monitoring LINE events on those code objects alone, with a tool id of this
#             probe's own; every other line of them returns DISABLE at its first run, so only
#             the wanted line keeps calling us. Removing the events frees the tool id.
#   3.8-3.11  the instrument engine's entry hook on the enclosing function sets a trace
#             function on the calling thread only while a call of it runs (sys.settrace is per
#             thread); that function gives a line tracer to frames of the probed code only,
#             and clears itself when the call ends. A thread that already has a trace function
#             (a debugger, coverage) is left alone: its calls are skipped and counted. A
#             generator or coroutine keeps its thread's trace function from its first step to
#             its end (suspended too): that thread's other calls pay a trace call meanwhile.
# After the probe ends (-n, Ctrl-C, the CLI gone, reset, detach) nothing is left: the tool id
# is freed; a trace function still set on a thread removes itself at its next event.
import sys
import time
import types
import _thread

REQUIRES = ("errors", "real", "codes")

_MONITORING = sys.version_info >= (3, 12) and hasattr(sys, "monitoring")
_get_ident = _thread.get_ident
_getframe = sys._getframe
MAX_LOCALS = 100            # local variables shown per hit, at most
LOCALS_BYTES = 65536        # serialised locals per hit, at most (shared by the variables)
_live = {}                  # id -> LineProbe of the line observations running (fork, detach)


# ---------------------------------------------------------------------------
# Where: the location -> the code objects holding that line
# ---------------------------------------------------------------------------
def parse_location(text):
    """'path/file.py:12' or 'module.func:12' -> (spec, 12)."""
    spec, _, num = (text or "").rpartition(":")
    if not spec or not num.isdigit() or int(num) < 1:
        raise errors.CommandError("a location is file.py:LINE or module.func:LINE, not %r" % (text,),
                                  code="BAD_ARGS")
    return spec, int(num)


def _functions_of_file(path, instrument, names, reflect):
    """[instrument.Target] of the Python functions and methods the loaded modules whose file is
    `path` define (read from their namespaces: nothing is imported, no code of theirs runs)."""
    import os
    matches = _file_matcher(path)
    found, seen, files = [], set(), set()
    for modname, module in names.loaded_modules():
        file = reflect.module_dict(module).get("__file__")
        if type(file) is not str or not matches(os.path.realpath(file)):
            continue
        files.add(os.path.realpath(file))
        todo = [(modname, reflect.module_dict(module))]
        while todo and len(found) < 10000:
            prefix, scope = todo.pop()
            for attr, value in list(scope.items()):
                func = _function_in(value, reflect)
                if func is not None and id(func.__code__) not in seen:
                    seen.add(id(func.__code__))
                    code = instrument._original_code(func)
                    found.append(instrument.Target("%s.%s" % (prefix, attr), func, code, "function"))
                elif reflect.is_class(value) and reflect.type_module(value) == module.__name__:
                    todo.append(("%s.%s" % (prefix, attr), reflect.type_dict(value)))
    if len(files) > 1:
        raise errors.CommandError("%s is more than one loaded file (%s): give more of its path" % (
            path, ", ".join(sorted(files)[:5])), code="BAD_ARGS")
    if not found:
        raise errors.CommandError("no loaded module has the file %s (peeka line looks only at modules the "
                                  "process imported)" % path, code="NOT_LOADED")
    return found


def _file_matcher(path):
    """An absolute path matches that file; a relative one any loaded file ending with it (the
    target's working directory is not the CLI's)."""
    import os
    if os.path.isabs(path):
        wanted = os.path.realpath(path)
        return lambda file: file == wanted
    tail = os.sep + os.path.normpath(path).lstrip(os.sep)
    return lambda file: file.endswith(tail)


def _function_in(value, reflect):
    kind = type(value)
    if issubclass(kind, staticmethod):
        value = reflect.static_function(value)
    elif issubclass(kind, classmethod):
        value = reflect.class_function(value)
    return value if type(value) is types.FunctionType else None


def _ranges(lines):
    """[3, 4, 5, 9] -> '3-5, 9'."""
    out, lines = [], sorted(lines)
    for n in lines:
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return ", ".join("%d" % a if a == b else "%d-%d" % (a, b) for a, b in out)


def find_line(targets, line, where):
    """(the targets whose code holds the line, {code: line} of the code objects holding it)."""
    holders, at, valid = [], {}, set()
    for target in targets:
        mine = False
        for code in codes.nested(target.code):
            lines = codes.own_lines(code)
            if len(lines) > 1:
                lines.discard(code.co_firstlineno)   # the def line: its code ran at the def
            valid |= lines
            if line in lines:
                at[code] = line
                mine = True
        if mine:
            holders.append(target)
    if not at:
        raise errors.CommandError("line %d of %s runs no code of a function (lines that do: %s)" % (
            line, where, _ranges(valid) or "none"), code="NOT_FOUND")
    return holders, at


def resolve(location, instrument, names, reflect):
    spec, line = parse_location(location)
    if spec.endswith(".py") or "/" in spec:
        targets = _functions_of_file(spec, instrument, names, reflect)
    else:
        targets = instrument.resolve_for_command(spec)
    return find_line(targets, line, spec)


def code_name(code, targets):
    """'module.Class.method' of a code object (its enclosing target's name for nested code)."""
    for t in targets:
        if t.code is code:
            return t.name
    qual = getattr(code, "co_qualname", code.co_name)
    return "%s.<%s>" % (targets[0].name, qual) if targets else qual


def check_condition(cond, codes):
    """A condition reads local variables by name: a name none of the codes has is refused now."""
    known = set()
    for code in codes:
        known.update(code.co_varnames + code.co_cellvars + code.co_freevars)
    unknown = sorted(n for n in cond.names if n not in known)
    if unknown:
        raise errors.CommandError("bad condition: '%s' is not a local variable there (locals: %s)" % (
            unknown[0], ", ".join(sorted(known)) or "none"), code="BAD_CONDITION")


# ---------------------------------------------------------------------------
# The probe: what a hit of the line does (target threads)
# ---------------------------------------------------------------------------
class LineProbe(object):
    """Combined with the observe library's StreamingProbe in run() (rate limit, queue, -n,
    drops, follow). hit(frame) runs on the target's thread each time the line is about to run."""
    QUEUE_MAX = 1000
    DROPPED_EVENT = "line_dropped"
    capture_args = False        # 3.8-3.11: the engine's entry hook needs no arguments

    def __init__(self, lib, observation, args, codes, targets):
        super(LineProbe, self).__init__(observation.cond, args.get("times", -1), args.get("rate", 100),
                                        observation.id)
        self.ser, self.thread_name = lib("serialize"), lib("observe").thread_name
        self.depth = max(0, int(args.get("depth", 1)))
        self.codes, self.targets = codes, targets
        self.names = dict((code, code_name(code, targets)) for code in codes)
        self.hits = 0
        self.busy_skipped = 0
        self.live = True
        self.tracer = None if _MONITORING else ThreadTracer(self)

    def hit(self, frame, code):
        self.hits += 1
        handle = self.handle
        if handle is None or handle.paused or self.reached():
            return
        cond = self.cond
        if cond is None:
            if not self.rate.allow():   # before the locals are read: a dropped hit costs the least
                self.rate_dropped += 1
                if _MONITORING:
                    handle.pause()      # until follow() sees a token again (the skipped are counted)
                return
            local = frame.f_locals
        else:
            local = frame.f_locals      # the condition reads it by name (a dict, or 3.13+'s proxy)
            try:
                if not cond.evaluate(local):
                    return
            except Exception as e:      # ConditionEvalError
                self.failed(str(e))
                return
            if not self.take_token():
                return
        if self.room():
            self.publish(self.observation(frame, code, local))

    def observation(self, frame, code, local):
        names = [n for n in local if type(n) is str][:MAX_LOCALS]
        each = LOCALS_BYTES // max(1, len(names))
        to_json = self.ser.to_json
        tid = _get_ident()
        return {"type": "observation", "watch_id": self.watch_id, "timestamp": time.time(),
                "func_name": self.names.get(code), "file": code.co_filename, "line": self.codes.get(code),
                "locals": dict((n, to_json(local[n], depth=self.depth, max_bytes=each)) for n in names),
                "locals_cut": max(0, len(local) - len(names)), "count": None,
                "thread": {"id": tid, "name": self.thread_name(tid)}}

    # -- 3.8-3.11: the engine's hooks on the enclosing function --------------------
    def admit(self):
        return self.live and not self.reached()

    def on_enter(self, call):
        return self.tracer.arm(call)

    def on_exit(self, call, result, exc, duration_ns):
        self.tracer.disarm(call)

    # -- what Observation asks --------------------------------------------------
    def drops(self):
        return {"rate_dropped": self.rate_dropped, "queue_dropped": self.queue_dropped,
                "busy_skipped": self.busy_skipped, "condition_errors": self.condition_errors,
                "condition_error": self.condition_error}

    def started_data(self, observation):
        return {"watch_id": observation.id, "location": observation.pattern, "functions": observation.functions,
                "lines": [{"function": self.names[c], "file": c.co_filename, "line": n}
                          for c, n in self.codes.items()],
                "condition": observation.condition,
                "mechanism": "sys.monitoring" if _MONITORING else "settrace"}

    def on_stop(self):
        self.live = False
        self.resume_when_ready(final=True)

    def summary(self, observation):
        return dict(self.drops(), watch_id=observation.id, location=observation.pattern, observations=self.count,
                    hits=self.hits, calls=observation.calls, probe_errors=self.errors,
                    seconds=observation.seconds(), reason=self.stop_reason())


class ThreadTracer(object):
    """3.8-3.11: a trace function on a thread only while a call of the enclosing function runs
    there; it hands a line tracer to the frames of the probed code only."""

    def __init__(self, probe):
        self.probe, self.codes = probe, probe.codes
        self.armed = {}             # thread id -> calls of the enclosing function running there
        self.lock = real.allocate_lock()
        self.on_call, self.on_line = self._make_tracers()

    def _make_tracers(self):
        probe, codes, armed = self.probe, self.codes, self.armed

        def on_line(frame, event, arg):
            if not probe.live:
                frame.f_trace = None
                if sys.gettrace() is on_call:
                    sys.settrace(None)
                return None
            if event == "line" and frame.f_lineno == codes.get(frame.f_code):
                try:
                    probe.hit(frame, frame.f_code)
                except Exception:
                    probe.errors += 1
            return on_line

        def on_call(frame, event, arg):
            # Called for 'call' events only: each frame started (or resumed) on this thread.
            if not probe.live or _get_ident() not in armed:
                if sys.gettrace() is on_call:
                    sys.settrace(None)    # the call ended elsewhere, or the probe stopped
                return None
            return on_line if frame.f_code in codes else None
        return on_call, on_line

    def arm(self, call):
        """The engine's entry hook: on the calling thread, before the function's frame starts."""
        tid = _get_ident()
        with self.lock:
            if tid in self.armed:
                self.armed[tid] += 1        # recursion, or a generator of it driven here
            elif sys.gettrace() is not None:
                self.probe.busy_skipped += 1    # a debugger's or coverage's: left alone
                return False
            else:
                self.armed[tid] = 1
                sys.settrace(self.on_call)
        call.state = {"tid": tid}
        return True

    def disarm(self, call):
        """The call ended (a generator: maybe on another thread than the one it began on)."""
        tid = call.state.get("tid")
        with self.lock:
            left = self.armed.get(tid, 1) - 1
            if left > 0:
                self.armed[tid] = left
                return
            self.armed.pop(tid, None)
        if tid == _get_ident() and sys.gettrace() is self.on_call:
            sys.settrace(None)
        # another thread's trace function removes itself at its next event


# ---------------------------------------------------------------------------
# Installing: what Observation.run() calls its instrument
# ---------------------------------------------------------------------------
class LineHandle(object):
    """3.12+: the probe's sys.monitoring tool id and what pausing needs."""

    def __init__(self, probe):
        self.probe, self.tool, self.paused, self.active = probe, None, False, True
        self._hits_at = 0

    def pause(self):
        """No hits wanted for now (rate limit spent, -n reached, the condition's cost): a hit
        costs the callback and a count."""
        if not self.paused:
            self._hits_at = self.probe.hits
            self.paused = True

    def resume(self):
        """Ends a pause; returns how many hits were skipped meanwhile."""
        if not self.paused:
            return 0
        self.paused = False
        return max(0, self.probe.hits - self._hits_at)

    def calls_seen(self):
        return self.probe.hits


class Installer(object):
    """Observation.run()'s `instrument`: the engine on 3.8-3.11, LINE events on 3.12+."""

    def __init__(self, instrument):
        self.engine = instrument

    def install(self, targets, probe):
        if not _MONITORING:
            handle = self.engine.install(targets, probe)
            _live[id(probe)] = probe
            return handle
        _live[id(probe)] = probe
        handle = probe.handle = LineHandle(probe)
        try:
            _claim_tool(handle, self.engine)
            for code in probe.codes:
                sys.monitoring.set_local_events(handle.tool, code, sys.monitoring.events.LINE)
        except BaseException:
            self.uninstall(handle)
            raise
        return handle

    def uninstall(self, handle):
        probe = handle.probe
        probe.live = False
        _live.pop(id(probe), None)
        if _MONITORING:
            _release_tool(handle)
        else:
            self.engine.uninstall(handle)

    def uninstall_all(self):
        """Detach: the engine's instrumentation and every line probe's events."""
        self.engine.uninstall_all()
        release_all()


def _claim_tool(handle, instrument):
    """handle.tool: a free sys.monitoring tool id (claimed as the engine claims its own), with
    the probe's LINE callback."""
    mon, probe = sys.monitoring, handle.probe
    codes, disable = probe.codes, mon.DISABLE

    def on_line(code, line):
        if line != codes.get(code) or not probe.live:
            return disable          # another line of the same code (or a forked child): never again
        try:
            probe.hit(_getframe(1), code)
        except Exception:
            probe.errors += 1
    try:
        handle.tool = instrument.claim_tool_id()    # from now on _release_tool() frees it
    except instrument.InstrumentError as e:
        raise errors.CommandError(str(e), code=e.code)
    mon.register_callback(handle.tool, mon.events.LINE, on_line)


def _release_tool(handle):
    mon, tool = sys.monitoring, handle.tool
    handle.tool, handle.active = None, False
    if tool is None:
        return
    for code in handle.probe.codes:
        _quietly(mon.set_local_events, tool, code, 0)
    _quietly(mon.register_callback, tool, mon.events.LINE, None)
    _quietly(mon.free_tool_id, tool)


def _quietly(fn, *args):
    try:
        fn(*args)
    except Exception:
        pass


def release_all():
    """Every running line probe stops taking hits; on 3.12+ their tool ids are freed."""
    for probe in list(_live.values()):
        probe.live = False
        if _MONITORING and isinstance(probe.handle, LineHandle):
            _release_tool(probe.handle)
    _live.clear()


def after_fork_in_child():
    """A child forked while a line probe ran: nothing there sends its hits (the engine's own
    fork hook restores the functions on 3.8-3.11)."""
    release_all()


def run(ctx, args):
    lib = ctx.agent.lib
    observe = lib("observe")
    instrument = lib("instrument")
    location = args.get("location")
    targets, codes = resolve(location, instrument, lib("names"), lib("reflect"))

    class LineObservation(observe.Observation):
        def __init__(self):     # the location, not a function pattern: resolved above
            self.ctx, self.command, self.instrument = ctx, "line", Installer(instrument)
            self.pattern, self.condition = location, args.get("condition")
            self.targets, self.functions = targets, [t.name for t in targets]
            self.cond = lib("condition").compile_for_command(self.condition, None, args.get("strict"))
            if self.cond is not None:
                check_condition(self.cond, codes)
            self.id = "line_%06x" % (id(ctx) & 0xFFFFFF)
            self.calls, self.started = 0, None

    class Probe(LineProbe, observe.StreamingProbe):
        pass

    observation = LineObservation()
    ctx.agent.on_detach("line", release_all)
    return observation.run(Probe(lib, observation, args, codes, targets))
