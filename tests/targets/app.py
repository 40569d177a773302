# Test target for watch/stack/monitor/reset: imports shop, then serves
# commands on a TCP socket from its main thread (which waits in accept()):
#   run <scenario> <n>   runs a scenario n times, replies with the results
#   introspect           identities of shop's functions and code objects
import asyncio
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import command_loop  # noqa: E402
import shop  # noqa: E402

RELEASE = threading.Event()
SUBINTERPRETERS = []
BOUND = shop.Calc().scale  # a bound method stored before any watch
ORIGINAL = {name: (id(getattr(shop, name)), id(getattr(shop, name).__code__))
            for name in ("add", "divide", "checkout", "fetch", "countdown", "fib")}


def outcome(fn, *args, **kwargs):
    try:
        return repr(fn(*args, **kwargs))
    except Exception as e:
        return "EXC:%s:%s" % (type(e).__name__, e)


def scenario(name, n):
    out = []
    for i in range(n):
        if name == "add":
            out.append(outcome(shop.add, i, i + 1))
        elif name == "alias":
            out.append(outcome(shop.alias, i, 1))
        elif name == "registry":
            out.append(outcome(shop.HANDLERS["add"], i, 2))
        elif name == "bound":
            out.append(outcome(BOUND, i))
        elif name == "divide":
            out.append(outcome(shop.divide, i, i % 3))
        elif name == "checkout":
            out.append(outcome(shop.checkout, shop.Order(100 + i), "X" if i % 2 else None, express=True))
        elif name == "mutate":
            out.append(outcome(shop.mutate, [i]))
        elif name == "static":
            out.append(outcome(shop.Calc.twice, i) + outcome(shop.Calc().twice, i))
        elif name == "classm":
            out.append(outcome(lambda: shop.Calc.make(i).factor) + outcome(lambda: shop.Calc().make(i).factor))
        elif name == "inner":
            out.append(outcome(shop.Calc.Inner().deep, i))
        elif name == "async":
            out.append(outcome(asyncio.run, shop.fetch(i)))
            out.append(outcome(asyncio.run, shop.fetch_fail(i)))
        elif name == "gen":
            gen = shop.countdown(3)
            out.append(repr(list(gen)))
        elif name == "greet":
            out.append(outcome(shop.greet, "n%d" % i))
        elif name == "fib":
            out.append(outcome(shop.fib, 6))
        elif name == "mix":
            for sub in ("add", "divide", "checkout", "static", "inner", "greet", "fib", "threads"):
                out.extend(scenario(sub, 1 + i % 3))
        elif name == "calculate":
            out.append(outcome(shop.Calculator().calculate, [1, 2, 3]))
        elif name == "calculate_bad":
            out.append(outcome(shop.Calculator().calculate, [1, -2]))
        elif name == "risky":
            out.append(outcome(shop.risky, [1, 2]))
        elif name == "fetch_tree":
            out.append(outcome(asyncio.run, shop.fetch_tree(3)))
        elif name == "calculate_busy":
            # Another thread calls square() in a loop meanwhile: it must not show in the tree.
            stop = threading.Event()
            calls = [0]

            def spin():
                while not stop.is_set():
                    shop.square(2)
                    calls[0] += 1
            other = threading.Thread(target=spin, name="spinner")
            other.start()
            try:
                out.append(outcome(shop.Calculator().calculate, [1, 2, 3]))
            finally:
                stop.set()
                other.join()
            out.append(calls[0])
        elif name == "calculate_traced":
            # A tracer of the target's own (as a debugger sets) must keep working during and after.
            seen = []

            def tracer(frame, event, arg):
                if event == "call":
                    seen.append(frame.f_code.co_name)
                return None
            sys.settrace(tracer)
            try:
                out.append(outcome(shop.Calculator().calculate, [1, 2, 3]))
                still = sys.gettrace() is tracer
            finally:
                sys.settrace(None)
            out.append({"tracer_kept": still, "tracer_saw_square": seen.count("square")})
        elif name == "calculate_profiled":
            # A profiler of the target's own: left alone (before 3.12 the call is not traced).
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
            try:
                out.append(outcome(shop.Calculator().calculate, [1, 2, 3]))
                kept = sys.getprofile() is prof or sys.version_info >= (3, 12)
            finally:
                prof.disable()
            calls = sum(1 for entry in prof.getstats() if getattr(entry.code, "co_name", "") == "square")
            out.append({"profiler_kept": kept, "profiler_saw_square": calls})
        elif name == "burn":
            # A thread that burns CPU for a second (thread -n finds it).
            def burn():
                end = time.time() + 1.5
                while time.time() < end:
                    sum(range(1000))
            threading.Thread(target=burn, name="burner", daemon=True).start()
            out.append("burning")
        elif name == "block":
            # "holder" owns a lock and waits; "waiter" blocks trying to take the same lock.
            cond = threading.Condition(threading.RLock())
            held = threading.Event()

            def holder():
                with cond:
                    held.set()
                    RELEASE.wait()

            def waiter():
                held.wait()
                with cond:
                    pass
            threads = [threading.Thread(target=holder, name="holder", daemon=True),
                       threading.Thread(target=waiter, name="waiter", daemon=True)]
            for t in threads:
                t.start()
            held.wait()
            out.append(threads[0].ident)
        elif name == "allocate":
            # Grows a list for about a second (memory --trace sees the site).
            def grow():
                for _ in range(20):
                    shop.HOARD.append(bytearray(50000))
                    time.sleep(0.04)
            threading.Thread(target=grow, name="grower", daemon=True).start()
            out.append("allocating")
        elif name == "subinterp":
            # A second interpreter that stays (mod_wsgi-style): the newest, so first in the
            # runtime's list; top must still find this one's threads.
            mod = None
            for candidate in ("_interpreters", "_xxsubinterpreters"):
                try:
                    mod = __import__(candidate)
                    break
                except ImportError:
                    pass
            if mod is not None and not SUBINTERPRETERS:
                SUBINTERPRETERS.append(mod.create())
            out.append(len(SUBINTERPRETERS))
        elif name == "unblock":
            RELEASE.set()
            out.append("released")
        elif name == "threads":
            results = []
            threads = [threading.Thread(target=lambda k=k: results.extend(scenario("add", 50)), name="w%d" % k)
                       for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            out.append(len(results))
    return out


def introspect():
    current = {name: (id(getattr(shop, name)), id(getattr(shop, name).__code__)) for name in ORIGINAL}
    tools = []
    mon = getattr(sys, "monitoring", None)
    if mon is not None:
        tools = [i for i in range(6) if mon.get_tool(i) is not None]
    return {"same_objects": current == ORIGINAL, "tools": tools,
            "descriptors": [type(shop.Calc.__dict__["twice"]).__name__, type(shop.Calc.__dict__["make"]).__name__],
            "never_imported": "peeka_never_imported_mod" not in sys.modules,
            "profile": repr(sys.getprofile()) if sys.getprofile() is not None else None,
            "log_level": shop.log.level,
            "threads": threading.active_count()}


def worker():
    """PEEKA_APP_WORKER=1: a thread named "worker" calls shop.add ten times a second."""
    i = 0
    while True:
        shop.add(i, 1)
        i += 1
        time.sleep(0.1)


def main():
    if os.environ.get("PEEKA_APP_WORKER") == "1":
        threading.Thread(target=worker, name="worker", daemon=True).start()
    for command, reply in command_loop.commands(backlog=16, size=256):
        words = command.decode().split()
        if words[0] == "run":
            answer = scenario(words[1], int(words[2]))
        elif words[0] == "introspect":
            answer = introspect()
        else:
            answer = {"error": "unknown"}
        reply((json.dumps(answer) + "\n").encode())


if __name__ == "__main__":
    main()
