# Target for tests/run.test.ts: exits in ~200 ms after 40 calls of work(), with the status
# given as its first argument; says what argv, sys.path[0] and __name__ it got.
import os
import sys
import time


def work(i):
    return i * 2


here = __file__.rsplit("/", 1)[0]      # no os.path call: the test counts those
print("script argv=%s path0=%s name=%s" % (sys.argv[1:], sys.path[0] == here, __name__), flush=True)
for i in range(40):
    work(i)
    os.path.join("a", str(i))
    time.sleep(0.005)
sys.exit(int(sys.argv[1]))
