# A fake ctx for unit tests of a command's snippet: the snippet's own run(ctx, args) runs in this
# interpreter on real objects (real logging, real modules); only what the agent would hand it is
# stood in for: the frames it emits (a list), its cancel event, and the agent (libraries loaded
# from agent/lib the way the agent loads them, detach hooks, shared state). Not a fake target.
import os
import sys
import threading

from agent_source import agent_source

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _agent_namespace():
    """The agent's own module body (its definitions only: nothing starts until _peeka_main),
    joined from its parts as the CLI embeds it."""
    namespace = {"__name__": "__peeka_agent_under_test__"}
    exec(compile(agent_source(), "boot.py", "exec"), namespace)
    return namespace


_AGENT = _agent_namespace()
CommandError = _AGENT["CommandError"]
ERRORS = _AGENT["_ERRORS"]   # the library `errors` that the agent has built in
BUILT_IN = _AGENT["_BUILT_IN_LIBS"]  # errors and real, bound before any code runs


def _execute(path, namespace, lib):
    """Runs the file in `namespace` as the agent does, then binds the libraries it requires."""
    namespace.update(BUILT_IN)
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), namespace)
    for name in namespace.get("REQUIRES", ()):
        namespace[name] = lib(name)
    return namespace


def load_snippet(command, agent=None):
    """commands/<command>/snippet.py, loaded as the agent loads a snippet: its namespace."""
    path = os.path.join(REPO, "commands", command, "snippet.py")
    namespace = {"CommandError": CommandError, "__name__": "__peeka_cmd_" + command + "__"}
    return _execute(path, namespace, (agent or FakeAgent()).lib)


class FakeAgent(object):
    """The agent as a snippet sees it: lib(), on_detach()/remove_detach(), state, thread_idents."""

    def __init__(self):
        self.state = {}
        self.detach_hooks = {}   # key -> fn, newest last
        self.thread_idents = set()  # the agent's own threads, which commands leave out
        self._libs = {}

    def lib(self, name):
        if name in BUILT_IN:
            return BUILT_IN[name]
        if name not in self._libs:
            module = type(sys)("__peeka_lib_" + name + "__")
            _execute(os.path.join(REPO, "agent", "lib", name + ".py"), module.__dict__, self.lib)
            self._libs[name] = module
        return self._libs[name]

    def on_detach(self, key, fn):
        self.detach_hooks.pop(key, None)  # re-registering makes it the newest
        self.detach_hooks[key] = fn

    def remove_detach(self, key):
        return self.detach_hooks.pop(key, None) is not None

    def detach(self):
        """Runs the hooks as a detach does: newest first."""
        hooks, self.detach_hooks = list(self.detach_hooks.values()), {}
        for fn in reversed(hooks):
            fn()


class FakeCtx(object):
    """One call's ctx: emitted frames are kept in `emitted`; `cancelled` is a real Event."""

    def __init__(self, agent=None, args=None):
        self.agent = agent or FakeAgent()
        self.args = args or {}
        self.id = 1
        self.libs = {}
        self.client = {"pid": os.getpid(), "uid": os.getuid()}
        self.cancelled = threading.Event()
        self.dropped = 0
        self.emitted = []

    def emit(self, obj):
        self.emitted.append(obj)
        return not self.cancelled.is_set()
