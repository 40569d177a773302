# What runs the target's work: hello's "concurrency" (threads, asyncio, gevent or eventlet).
# A part of the agent's source (agent/embed.ts joins the parts); uses real.py's patcher records.
import sys

# Judged from sys.modules, the patchers' own records and the threads' frames: nothing imported,
# none of the target's code run.
_PATCHED_AS = {"_thread": "thread", "threading": "thread", "_threading_local": "thread"}


def _gevent_patched():
    """The standard modules gevent patched, by their usual names (socket, thread, time...)."""
    names = set(_PATCHED_AS.get(name, name) for name in _gevent_saved() if not name.startswith("_gevent"))
    return sorted(names)


def _eventlet_patched():
    patcher = sys.modules.get("eventlet.patcher")
    done = vars(patcher).get("already_patched") if patcher is not None else None
    return sorted(_PATCHED_AS.get(name, name) for name in done) if isinstance(done, dict) else []


def _runs_event_loop(frame, depth=1000):
    """Whether a thread's stack holds asyncio's run_forever, or asyncio.run around a C loop (uvloop).
    Gives up after `depth` frames: a runaway recursion must not hold the GIL long (its loop, at the
    bottom, is then not counted)."""
    while frame is not None and depth > 0:
        depth -= 1
        code = frame.f_code
        if (code.co_name == "run_forever" and code.co_filename.endswith("asyncio/base_events.py")) or (
                code.co_name == "run" and code.co_filename.endswith("asyncio/runners.py")):
            return True
        frame = frame.f_back
    return False


def _concurrency(hidden):
    """model (gevent, eventlet, asyncio or threads), the modules a patcher replaced, and how many
    threads run an asyncio event loop (`uvloop` when that loop implementation is loaded)."""
    frames = sys._current_frames()
    loops = sum(1 for ident, frame in frames.items() if ident not in hidden and _runs_event_loop(frame))
    del frames  # they pin the target's objects
    uvloop = "uvloop" in sys.modules
    gevent, eventlet = _gevent_patched(), _eventlet_patched()
    if gevent or "gevent.hub" in sys.modules:
        model, patched = "gevent", gevent
    elif eventlet or "eventlet.hubs" in sys.modules:
        model, patched = "eventlet", eventlet
    else:
        model, patched = ("asyncio" if loops else "threads"), []
    report = {"model": model, "patched": patched, "asyncio_loops": loops, "uvloop": uvloop}
    if _REAL.still_patched:
        report["agent_cooperative"] = _REAL.still_patched  # could not find the originals of these
    return report

