# What the ASGI test targets share: a listener on a free port, a lifespan that prints
# "ready <pid> <port>" once the app serves (the tests wait for that line), and uvicorn
# running the app on that listener with the stdlib asyncio loop.
import contextlib
import os
import socket

import uvicorn


def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def announcing(sock):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        print("ready %d %d" % (os.getpid(), sock.getsockname()[1]), flush=True)
        yield

    return lifespan


def serve(app, sock):
    config = uvicorn.Config(app, loop="asyncio", log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
