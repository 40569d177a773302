# A multiprocessing pool (fork start method) whose workers call `work` in a loop, for
# tests/processes.test.ts. Prints "ready <pid> <worker pids...>" once every worker has answered.
import multiprocessing
import os
import sys
import time


def work(n):
    return n * 2


def serve(_):
    # Each task keeps its worker calling `work` for a while, so every worker is seen busy.
    deadline = time.time() + 0.5
    while time.time() < deadline:
        work(1)
        time.sleep(0.01)
    return os.getpid()


def main():
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        pids = set()
        while len(pids) < 3:
            pids.update(pool.map(serve, range(6), chunksize=1))
        print("ready", os.getpid(), *sorted(pids), flush=True)
        while True:
            pool.map(serve, range(6), chunksize=1)


if __name__ == "__main__":
    sys.exit(main())
