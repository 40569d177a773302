# Target for tests/run.test.ts: calls work() until a signal ends it.
import time


def work(i):
    return i + 1


i = 0
while True:
    i = work(i)
    time.sleep(0.01)
