# Test target for peeka line: serves commands on a TCP socket from its main thread:
#   run N            linemod.accumulate(N), and a generator drained, on this thread
#   slow N MS        linemod.slow_loop on a new thread; its sys.gettrace() at the end is kept
#   settrace on|off  a tracer of our own on this thread (counts its 'call' events)
#   state            this thread's trace function, the slow thread's, the monitoring tools
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import command_loop  # noqa: E402
import linemod  # noqa: E402

SEEN = {"user_calls": 0, "slow_trace": "not run", "slow_done": 0}


def user_tracer(frame, event, arg):
    SEEN["user_calls"] += 1
    return None


def slow(n, ms):
    SEEN["slow_trace"] = repr(linemod.slow_loop(n, ms / 1000.0))
    SEEN["slow_done"] += 1


def name_of(fn):
    return None if fn is None else getattr(fn, "__name__", repr(fn))


def monitoring():
    mon = getattr(sys, "monitoring", None)
    if mon is None:
        return {"tools": [], "local_events": 0}
    codes = [linemod.accumulate.__code__, linemod.slow_loop.__code__, linemod.countdown.__code__]
    return {"tools": [i for i in range(6) if mon.get_tool(i) is not None],
            "local_events": sum(mon.get_local_events(i, c) for i in range(6) for c in codes)}


def answer(words):
    if words[0] == "run":
        return [linemod.accumulate(int(words[1])), list(linemod.countdown(3))]
    if words[0] == "slow":
        threading.Thread(target=slow, args=(int(words[1]), int(words[2]))).start()
        return "ok"
    if words[0] == "settrace":
        sys.settrace(user_tracer if words[1] == "on" else None)
        return "ok"
    if words[0] == "state":
        return dict(SEEN, trace=name_of(sys.gettrace()), **monitoring())
    return "unknown"


for data, send in command_loop.commands():
    send(json.dumps(answer(data.decode().split())).encode())
