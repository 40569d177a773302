# The fork hook: a forked child of the attached process drops the agent it inherited.
# A part of the agent's source (agent/embed.ts joins the parts); the agent's own cleanup is
# _Agent.after_fork_in_child in agent.py.
import os
import sys

# os.register_at_fork cannot be undone, so a process gets one hook for its whole life, whatever
# attaches and detaches follow: a small function made in a namespace of its own, which keeps no
# agent (nor library, nor this source's globals) alive. It takes the agent of the moment from
# sys._peeka_agent, so the child has none (a later attach makes a new one), and lets it clean up;
# after a detach there is none and it does nothing. It never raises: CPython would print to the
# target's stderr.
_AT_FORK_SOURCE = """
def peeka_after_fork_in_child():
    try:
        agent = sys.__dict__.pop("_peeka_agent", None)
        forget = getattr(agent, "after_fork_in_child", None)
        if forget is not None:
            forget()
    except BaseException:
        pass
"""


def _hook_fork():
    """Registers the at-fork hook, once per process (the first agent does)."""
    namespace = {"sys": sys}
    exec(_AT_FORK_SOURCE, namespace)
    hook = namespace["peeka_after_fork_in_child"]
    if sys.__dict__.setdefault("_peeka_at_fork", hook) is hook:
        os.register_at_fork(after_in_child=hook)

