# peeka run: what `python -c` runs before the script (argv: -c SCRIPT ARGS...). Nothing is
# installed anywhere: it waits for the session's boot.py (written by the CLI once it knows this
# process's pid), runs it as attach's bootstrap does, waits until the CLI has the command in
# place, then runs the script as __main__ with the sys.argv and sys.path[0] `python SCRIPT ARGS`
# would give it. Its own names live in a dict of their own, never in __main__.
#
# The gate (in the agent's state, for commands/run/snippet.py) has five locks, each taken here
# and released by the other side: start (the command is in place), paused and resume (a pattern
# that names code the script has not defined yet: the script stops at the first line or call
# after it appears), done (the script ended: its atexit hooks have run) and leave (the CLI has
# printed the command's end: the process may go on exiting).
import atexit
import os
import sys
import time
import _thread

WAIT_BOOT_S = 30.0     # the CLI writes boot.py within milliseconds of the start
POLL_S = 0.002
LEAVE_WAIT_S = 5.0     # at exit: how long the CLI may take to print the command's end


def session_dir():
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    start = stat[stat.rindex(b")") + 2:].split()[19].decode()
    return "/tmp/peeka-%d/%d-%s" % (os.geteuid(), os.getpid(), start)


def read_boot(path, parent):
    """boot.py once complete (the CLI writes it in pieces: its last line starts the agent)."""
    deadline = time.monotonic() + WAIT_BOOT_S
    while time.monotonic() < deadline and os.getppid() == parent:
        try:
            with open(path, "rb") as f:
                source = f.read()
            if source.endswith(b"})\n") and source.rsplit(b"\n", 2)[-2].startswith(b"_peeka_main("):
                return source
        except OSError:
            pass
        time.sleep(POLL_S)
    return None


def abandon(message):
    sys.stderr.write("peeka run: %s; the script was not started\n" % message)
    sys.exit(1)


def wait_for(lock, parent):
    """Waits for the CLI to release `lock`; False if the CLI went away first."""
    while not lock.acquire(True, 0.05):
        if os.getppid() != parent:
            return False
    return True


def make_gate():
    gate = {}
    for name in ("start", "paused", "resume", "done", "leave"):
        gate[name] = _thread.allocate_lock()
        gate[name].acquire()
    gate["ready"] = None     # set by the snippet: whether the command's pattern names loaded code
    return gate


class Arming(object):
    """While the command's pattern names nothing loaded yet: a trace function that, on each call
    and on each line of the script's own functions, checks again once sys.modules or the
    script's globals changed, and stops the script there until the command is in place."""

    def __init__(self, gate, parent, script, main_globals):
        self.gate, self.parent, self.script, self.globals = gate, parent, script, main_globals
        self.seen = None
        self.armed = False

    def start(self):
        sys.settrace(self.on_call)

    def on_call(self, frame, event, arg):
        self.check()
        if self.armed or frame.f_code.co_filename != self.script:
            return None
        return self.on_line

    def on_line(self, frame, event, arg):
        if event == "line":
            self.check()
        return None if self.armed else self.on_line

    def check(self):
        if self.armed:
            return
        seen = (len(sys.modules), len(self.globals))
        if seen == self.seen:
            return
        self.seen = seen
        try:
            ready = self.gate["ready"]()
        except Exception:
            ready = False
        if ready:
            self.arm()

    def arm(self):
        self.armed = True
        sys.settrace(None)
        frame = sys._getframe(1)
        while frame is not None:         # frames of the script we were tracing
            if frame.f_trace == self.on_line:
                frame.f_trace = None
            frame = frame.f_back
        self.gate["paused"].release()
        wait_for(self.gate["resume"], self.parent)


def main_module(script, loader):
    """__main__ as `python SCRIPT` makes it (the module -c made, its namespace emptied)."""
    g = sys.modules["__main__"].__dict__
    builtins = g.get("__builtins__")
    g.clear()
    g.update({"__name__": "__main__", "__doc__": None, "__package__": None, "__loader__": loader,
              "__spec__": None, "__file__": script, "__cached__": None, "__builtins__": builtins})
    return g


def compile_script(script):
    """The script's code; a syntax error is shown as `python SCRIPT` shows it."""
    try:
        with open(script, "rb") as f:
            return compile(f.read(), script, "exec", dont_inherit=True)
    except SyntaxError as e:
        sys.excepthook(type(e), e.with_traceback(None), None)
        sys.exit(1)


def run_script(script, code, globals_):
    """Runs the script; an uncaught exception is shown as `python SCRIPT` shows it (our frames
    left out of the traceback) and ends the process with its status."""
    try:
        exec(code, globals_)
    except SystemExit:
        raise
    except BaseException as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != script:
            tb = tb.tb_next
        sys.excepthook(type(e), e.with_traceback(tb), tb)
        sys.exit(130 if isinstance(e, KeyboardInterrupt) else 1)


def at_exit(gate, pid):
    """The script has ended (its own atexit hooks ran first): the command may end and print
    what it saw before the agent closes its connections."""
    if os.getpid() != pid:
        return
    try:
        gate["done"].release()
        gate["leave"].acquire(True, LEAVE_WAIT_S)
    except BaseException:
        pass


def main():
    try:
        script, code, globals_ = prepare()
    except KeyboardInterrupt:        # Ctrl-C before the script started: no traceback of ours
        sys.exit(130)
    run_script(script, code, globals_)


def prepare():
    """Everything that runs Python code of ours happens before the command is in place (it
    would see our calls otherwise, e.g. of os.path.join): after the gate, only the trace."""
    script, parent = sys.argv[1], os.getppid()
    script = os.path.abspath(script)
    path0 = os.path.dirname(os.path.realpath(script))
    code = compile_script(script)
    loader = sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", script)
    directory = session_dir()
    source = read_boot(directory + "/boot.py", parent)
    if source is None:
        abandon("peeka did not prepare the session")
    exec(compile(source, directory + "/boot.py", "exec"), {"__name__": "__peeka_boot__"})
    agent = getattr(sys, "_peeka_agent", None)
    if agent is None or not hasattr(agent, "state"):
        abandon("the agent did not start (see %s/agent.log)" % directory)
    gate = make_gate()
    agent.state["run"] = gate
    arming = Arming(gate, parent, script, sys.modules["__main__"].__dict__)
    if not wait_for(gate["start"], parent):
        abandon("peeka ended before the command was in place")
    atexit.register(at_exit, gate, os.getpid())
    sys.argv[:] = sys.argv[1:]
    sys.path[0] = path0
    globals_ = main_module(script, loader)
    if gate["ready"] is not None:
        arming.start()
    return script, code, globals_


main()
