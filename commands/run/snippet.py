# run: the agent's side of `peeka run` (the script's bootstrap is commands/run/bootstrap.py).
# One streaming call from the CLI paces the script: it says when to start the command
# (`run_arm`: at once if the command's pattern names loaded code, else once the script has
# defined it), lets the script go once the command is in place (`run_started`), says when the
# script has ended (`run_script_done`, after the observations were asked to stop, so that
# everything they saw is sent) and lets the process exit once the CLI cancels this call.
import os
import time
import types

REQUIRES = ("errors", "reflect", "names", "codes")

ARM_TIMEOUT_S = 15.0       # the command must be in place within this
POLL_S = 0.001
UNLISTED_GRACE_S = 0.05    # a command that is not listed in "watches" (top): after its call starts
LEAVE_TIMEOUT_S = 5.0      # the CLI's print of the command's end


def run(ctx, args):
    gate = ctx.agent.state.get("run")
    if gate is None:
        raise errors.CommandError("this process was not started by peeka run", code="NOT_RUN")
    try:
        listed = args.get("command") if args.get("listed") else None
        return pace(ctx, gate, args.get("pattern"), listed)
    finally:
        # Never held at exit. A script not started yet stays held: the CLI ends it, or the
        # bootstrap gives up when the CLI is gone.
        _release(gate["leave"])
        gate["ready"] = None


def pace(ctx, gate, pattern, listed):
    go = gate["start"]
    if pattern and not resolves(pattern):
        gate["ready"] = lambda: resolves(pattern)      # the bootstrap's trace function asks
        go.release()
        ctx.emit(_event("run_waiting", {"pattern": pattern}))
        if not _wait(ctx, gate["paused"], gate["done"]):
            return _ended(ctx, pattern, armed=False)
        go = gate["resume"]
    calls_before = ctx.agent.counts.get("calls", 0)
    ctx.emit(_event("run_arm", {"pattern": pattern}))
    if not wait_armed(ctx, listed, calls_before):
        raise errors.CommandError("the command was not in place within %d s" % ARM_TIMEOUT_S,
                                  code="RUN_NOT_ARMED")
    go.release()
    ctx.emit(_event("run_started", {}))
    if not _wait(ctx, gate["done"]):
        return {"script_done": False}
    return _ended(ctx, pattern, armed=True)


def resolves(pattern):
    """Whether the pattern names code that exists now (or is refused for another reason than
    not being there yet: the command then says why). line's file.py:N is there once a loaded
    module with that file defines a function holding line N (a bare file.py: once loaded)."""
    path, line = _file_location(pattern)
    if path is not None:
        return _file_defines(path, line)
    try:
        names.resolve(pattern)
        return True
    except names.ResolveError as e:
        return e.code not in ("NOT_LOADED", "NOT_FOUND")


def running_observations(ctx, command=None):
    """The stop events of the observations listed in "watches" (of `command` only if given)."""
    entries = list(ctx.agent.state.get("watches", {}).values())
    return [e["stop"] for e in entries if type(e) is dict and hasattr(e.get("stop"), "set")
            and (command is None or e.get("command") == command)]


def _file_location(pattern):
    """(file, line or None) for a file pattern (file.py:N, file.py), else (None, None)."""
    spec, _, num = pattern.rpartition(":")
    if spec.endswith(".py") and num.isdigit():
        return spec, int(num)
    return (pattern, None) if pattern.endswith(".py") else (None, None)


def _file_defines(path, line):
    wanted = os.path.realpath(path)
    for _, module in names.loaded_modules():
        scope = reflect.module_dict(module)
        f = scope.get("__file__")
        if type(f) is str and os.path.realpath(f) == wanted:
            if line is None or any(_holds_line(v, line) for v in list(scope.values())):
                return True
    return False


def _holds_line(value, line):
    """Whether a function of a module's namespace (or a method of its class) holds the line."""
    if reflect.is_class(value):
        members = list(reflect.type_dict(value).values())
    else:
        members = [value]
    return any(type(f) is types.FunctionType and codes.has_line(f.__code__, line) for f in members)


def wait_armed(ctx, listed, calls_before):
    """Until the command is in place: listed in "watches" as `listed` when it lists itself
    there, else once its call has started (and a moment more)."""
    deadline = time.monotonic() + ARM_TIMEOUT_S
    while time.monotonic() < deadline and not ctx.cancelled.is_set():
        if listed and running_observations(ctx, listed):
            return True
        if not listed and ctx.agent.counts.get("calls", 0) > calls_before:
            time.sleep(UNLISTED_GRACE_S)
            return True
        time.sleep(POLL_S)
    return False


def _ended(ctx, pattern, armed):
    """The script has ended: the observations stop (each sends what it still holds and its
    summary), the CLI is told, and the process may exit once the CLI has printed it all."""
    for stop in running_observations(ctx):
        stop.set()
    ctx.emit(_event("run_script_done", {"armed": armed, "pattern": pattern}))
    ctx.cancelled.wait(LEAVE_TIMEOUT_S)
    return {"script_done": True, "armed": armed}


def _wait(ctx, lock, other=None):
    """Waits for `lock` (or `other`) to be released; False if `other` came first or the CLI
    went away."""
    while not ctx.cancelled.is_set():
        if lock.acquire(True, 0.02):
            return True
        if other is not None and other.acquire(False):
            return False
    return False


def _release(lock):
    try:
        lock.release()
    except RuntimeError:
        pass        # already released


def _event(name, data):
    return {"type": "event", "event": name, "data": data}
