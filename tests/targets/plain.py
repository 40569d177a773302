# A process that never imports threading (a batch job), or, with "asyncio", one running an
# asyncio event loop. Prints "ready <pid> 0"; on SIGUSR1 prints whether threading is loaded.
import os
import signal
import sys
import time

if "threading" in sys.modules and not sys.flags.no_site and sys.argv[1:] != ["asyncio"]:
    # some site setups import threading at startup (pyenv's 3.11 here, through a .pth file): run
    # again without site, so that this is a process that never imported threading
    os.execv(sys.executable, [sys.executable, "-S", "-u"] + sys.argv)


def report(signum, frame):
    print("threading-loaded", "threading" in sys.modules, flush=True)


signal.signal(signal.SIGUSR1, report)
if sys.argv[1:] == ["asyncio"]:
    import asyncio

    async def main():
        print("ready %d 0" % os.getpid(), flush=True)
        while True:
            await asyncio.sleep(0.05)

    asyncio.run(main())
print("ready %d 0" % os.getpid(), flush=True)
while True:
    time.sleep(0.05)
