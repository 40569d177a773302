# An asyncio server with requests in flight, stdlib only (3.8-3.15), for `peeka tasks`.
# The main thread runs one loop (asyncio.run), a thread "side-loop" another. Each "request"
# is suspended in a different way:
#   req-chain    handle_chain -> fetch_rate -> asyncio.sleep(600)
#   req-agen     consumes ticker(), an async generator suspended in asyncio.sleep(600)
#   req-future   awaits a Future nobody resolves
#   req-gather   gather() of gather-child-1 and gather-child-2 (each sleeping)
#   req-group    (3.11+) a TaskGroup of group-child-1 and group-child-2
#   req-stubborn (3.11+) cancelled, caught it, awaits again: cancelling
#   req-done     finished, still referenced
#   side-chain   on the side loop: handle_chain -> fetch_rate -> asyncio.sleep(600)
#   worker       the one task that keeps working: results[i] = i * i % 97 every 5 ms
# A control socket (a plain thread, "ready <pid> <port>"): `report` gives the results and the
# pending task names of both loops (read in each loop by the target itself); `many N` starts N
# tasks sleeping on the side loop (idle-0 ...).
import asyncio
import json
import os
import socket
import sys
import threading

results = []
loops = {}
keep = []


async def fetch_rate(cur):
    await asyncio.sleep(600)
    return cur


async def handle_chain(cur):
    rate = await fetch_rate(cur)
    return rate


async def ticker():
    while True:
        await asyncio.sleep(600)
        yield 1


async def consume_ticks():
    async for _ in ticker():
        pass


async def wait_gate(gate):
    await gate


async def sleepy():
    await asyncio.sleep(600)


async def gather_both():
    loop = asyncio.get_running_loop()
    children = [loop.create_task(sleepy()) for _ in range(2)]
    for i, child in enumerate(children):
        child.set_name("gather-child-%d" % (i + 1))
    await asyncio.gather(*children)


async def group_both():
    async with asyncio.TaskGroup() as tg:
        for i in range(2):
            tg.create_task(sleepy(), name="group-child-%d" % (i + 1))


async def stubborn():
    try:
        await asyncio.sleep(600)
    except asyncio.CancelledError:
        await asyncio.sleep(600)


async def quick():
    return 42


async def work():
    i = 0
    while True:
        results.append(i * i % 97)
        i += 1
        await asyncio.sleep(0.005)


def named(coro, name):
    task = asyncio.get_running_loop().create_task(coro)
    task.set_name(name)
    keep.append(task)
    return task


async def main_loop(ready):
    loops["main"] = asyncio.get_running_loop()
    asyncio.current_task().set_name("main")
    named(handle_chain("EUR"), "req-chain")
    named(consume_ticks(), "req-agen")
    named(wait_gate(asyncio.get_running_loop().create_future()), "req-future")
    named(gather_both(), "req-gather")
    named(work(), "worker")
    done = named(quick(), "req-done")
    if sys.version_info >= (3, 11):
        named(group_both(), "req-group")
        stubborn_task = named(stubborn(), "req-stubborn")
    await asyncio.sleep(0.05)
    if sys.version_info >= (3, 11):
        stubborn_task.cancel()
    await done
    ready.set()
    await asyncio.Event().wait()


def side_loop(ready):
    loop = asyncio.new_event_loop()
    loops["side"] = loop
    loop.call_soon(lambda: named(handle_chain("USD"), "side-chain"))
    loop.call_soon(ready.set)
    loop.run_forever()


def in_loop(loop, fn):
    """Runs fn() in the loop's own thread and returns its value."""
    box, done = [], threading.Event()

    def call():
        box.append(fn())
        done.set()
    loop.call_soon_threadsafe(call)
    done.wait(30)
    return box[0]


def pending_names(loop):
    return sorted(t.get_name() for t in asyncio.all_tasks(loop))


def start_many(n):
    loop = loops["side"]
    for i in range(n):
        keep.append(loop.create_task(sleepy(), name="idle-%d" % i))


def control(srv):
    while True:
        conn, _ = srv.accept()
        try:
            words = conn.recv(64).decode().split()
            if words and words[0] == "many":
                in_loop(loops["side"], lambda: start_many(int(words[1])))
                in_loop(loops["side"], lambda: None)  # after the new tasks' first steps (FIFO)
                reply = {"ok": True}
            else:
                reply = {"results": list(results), "main": in_loop(loops["main"], lambda: pending_names(loops["main"])),
                         "side": in_loop(loops["side"], lambda: pending_names(loops["side"]))}
            conn.sendall((json.dumps(reply) + "\n").encode())
        finally:
            conn.close()


def main():
    side_ready, main_ready = threading.Event(), threading.Event()
    threading.Thread(target=side_loop, args=(side_ready,), name="side-loop", daemon=True).start()
    side_ready.wait(30)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def announce():
        main_ready.wait(30)
        print("ready %d %d" % (os.getpid(), srv.getsockname()[1]), flush=True)
        control(srv)
    threading.Thread(target=announce, name="control", daemon=True).start()
    asyncio.run(main_loop(main_ready))


if __name__ == "__main__":
    main()
