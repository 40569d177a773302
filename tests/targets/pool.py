# A multiprocessing pool (fork start method) whose workers call `work` in a loop, for
# tests/processes.test.ts and bench/processes.ts. Argument: the number of workers (default 3),
# with ":busy" for workers that call `work` without pausing. Prints
# "ready <pid> <worker pids...>" once every worker has answered.
import multiprocessing
import os
import sys
import time


def work(n):
    return n * 2


def serve(pause):
    # Each task keeps its worker calling `work` for a while, so every worker is seen busy.
    deadline = time.time() + 0.5
    while time.time() < deadline:
        work(1)
        if pause:
            time.sleep(pause)
    return os.getpid()


def main():
    spec = (sys.argv[1] if len(sys.argv) > 1 else "3").split(":")
    workers, pause = int(spec[0]), (0 if spec[1:] == ["busy"] else 0.01)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        pids = set()
        while len(pids) < workers:
            pids.update(pool.map(serve, [pause] * (2 * workers), chunksize=1))
        print("ready", os.getpid(), *sorted(pids), flush=True)
        while True:
            pool.map(serve, [pause] * (2 * workers), chunksize=1)


if __name__ == "__main__":
    sys.exit(main())
