# Test target for trace and watch of async code: stdlib only (asyncio), 3.8-3.15. Its main
# thread runs an event loop that serves commands on a TCP socket (asyncio.start_server):
#   run <scenario> <n>   runs a scenario n times in the loop, replies with the results
#   introspect           identities of the functions instrumented, tool ids, profile function
#   time <kind> <n>      ns per call of add() (kind plain) or of awaiting add_async() (kind
#                        coroutine) over n calls, in the loop (bench/async.ts)
#   beside <n>           the same for add() while an endpoint call is suspended in its sleep
# While the endpoint awaits its slow child, other tasks of the same loop keep the thread busy
# (crunch) and one calls the very same child (the rival): none of that is the endpoint's call;
# checkout_profiled says how many of the busy tasks' steps ran under a profile function.
# Like a big application it has thousands of modules loaded (FILLER_MODULES), so that work
# per loaded module shows when it is charged to a traced call.
import asyncio
import itertools
import json
import os
import sys
import time

SLEEP = 0.05           # what fetch_rate awaits (s)
TICK = 0.01            # what each step of ticks() awaits (s)
TIMEOUT = 0.02         # what guarded() gives slow_rate (s)
FILLER_MODULES = 3000
RATES = {"EUR": 1.5, "GBP": 2.0}


async def fetch_rate(cur):
    await asyncio.sleep(SLEEP)
    return RATES[cur]


async def endpoint(cur, amount):
    rate = await fetch_rate(cur)
    return round(amount * rate, 2)


async def slow_rate(cur):
    await asyncio.sleep(10)
    return RATES[cur]


async def guarded(cur, amount):
    """A child that times out (cancelled: on 3.12+ wait_for runs it in this task), then the
    usual one."""
    try:
        rate = await asyncio.wait_for(slow_rate(cur), TIMEOUT)
    except asyncio.TimeoutError:
        rate = await fetch_rate(cur)
    return round(amount * rate, 2)


async def ticks(n):
    for i in range(n):
        await asyncio.sleep(TICK)
        yield i * i


async def consume(n):
    total = 0
    async for value in ticks(n):
        total += value
    return total


def crunch(n):
    return sum(i * i for i in range(n))


async def busy(stop, profiled):
    """Another task: CPU work in small steps until stopped; returns how many steps it made.
    Counts in profiled[0] the steps that ran under a profile function (peeka's trace hook)."""
    steps = 0
    while not stop.is_set():
        crunch(3000)
        steps += 1
        profiled[0] += sys.getprofile() is not None
        await asyncio.sleep(0)
    return steps


def helper(x):
    return x * 2


def quick(x):
    return helper(x) + 1


def add(x, y):
    return x + y


async def add_async(x, y):
    return x + y


async def time_calls(kind, n):
    # Allocating nothing per call (itertools.repeat, 1 + 2): on 3.12 a loop that allocates an int
    # per call swings with where pymalloc's free blocks lie, and the agent moves them.
    t0 = time.perf_counter_ns()
    if kind == "coroutine":
        for _ in itertools.repeat(None, n):
            await add_async(1, 2)
    else:
        for _ in itertools.repeat(None, n):
            add(1, 2)
    return (time.perf_counter_ns() - t0) / n


async def time_beside(n):
    """ns per call of add() in this task while endpoint() (another task) awaits its sleep."""
    call = asyncio.get_running_loop().create_task(endpoint("EUR", 1))
    await asyncio.sleep(0)      # it starts and suspends
    ns = await time_calls("plain", n)
    await call
    return ns


async def checkout(i, pair=False, profiled=None):
    """The endpoint in a task named checkout-<i>, while three busy tasks and a rival run."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    profiled = [0] if profiled is None else profiled
    others = [loop.create_task(busy(stop, profiled), name="busy-%d" % k) for k in range(3)]
    rival = loop.create_task(fetch_rate("GBP"), name="rival")
    calls = [loop.create_task(endpoint("EUR", 10 + i), name="checkout-%d" % i)]
    if pair:
        calls.append(loop.create_task(endpoint("EUR", 20 + i), name="checkout-%d-b" % i))
    results = await asyncio.gather(*calls)
    await rival
    stop.set()
    steps = await asyncio.gather(*others)
    return results + [min(steps) > 0]


async def scenario(name, n):
    out = []
    for i in range(n):
        if name == "checkout":
            out.append(await checkout(i))
        elif name == "checkout_pair":
            out.append(await checkout(i, pair=True))
        elif name == "checkout_profiled":
            profiled = [0]
            await checkout(i, profiled=profiled)
            out.append(profiled[0])
        elif name == "guarded":
            out.append(await guarded("EUR", 10 + i))
        elif name == "stream":
            out.append(await consume(3))
        elif name == "quick":
            out.append(quick(i))
    return out


WATCHED = ("fetch_rate", "endpoint", "ticks", "consume", "quick", "helper")
ORIGINAL = {name: (id(globals()[name]), id(globals()[name].__code__)) for name in WATCHED}


def introspect():
    current = {name: (id(globals()[name]), id(globals()[name].__code__)) for name in WATCHED}
    mon = getattr(sys, "monitoring", None)
    tools = [i for i in range(6) if mon.get_tool(i) is not None] if mon is not None else []
    return {"same_objects": current == ORIGINAL, "tools": tools,
            "profile": repr(sys.getprofile()) if sys.getprofile() is not None else None}


async def serve(reader, writer):
    try:
        words = (await reader.readline()).decode().split()
        if words[0] == "run":
            reply = await scenario(words[1], int(words[2]))
        elif words[0] == "introspect":
            reply = introspect()
        elif words[0] == "time":
            reply = await time_calls(words[1], int(words[2]))
        elif words[0] == "beside":
            reply = await time_beside(int(words[1]))
        else:
            reply = {"error": "unknown"}
        writer.write((json.dumps(reply) + "\n").encode())
        await writer.drain()
    finally:
        writer.close()


def load_filler():
    for k in range(FILLER_MODULES):
        module = type(sys)("async_shop_filler_%d" % k)
        module.__file__ = "/nonexistent/async_shop_filler_%d.py" % k
        sys.modules[module.__name__] = module


async def main():
    load_filler()
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print("ready %d %d" % (os.getpid(), server.sockets[0].getsockname()[1]), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
