# A Starlette app under uvicorn (both from the framework environment) whose endpoint awaits a
# slow child coroutine: requests stay in flight for SLOW seconds, for `peeka tasks`.
# Prints "ready <pid> <port>" once uvicorn serves; GET /rate/<cur> answers {"cur", "rate"}.
import asyncio
import os
import sys

from asgi_serve import announcing, listener, serve
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

SLOW = float(os.environ.get("SLOW", "3"))


async def fetch_rate(cur):
    await asyncio.sleep(SLOW)
    return len(cur) * 1.5


async def rate_endpoint(request):
    cur = request.path_params["cur"]
    rate = await fetch_rate(cur)
    return JSONResponse({"cur": cur, "rate": rate})


def main():
    sock = listener()
    app = Starlette(routes=[Route("/rate/{cur}", rate_endpoint)], lifespan=announcing(sock))
    serve(app, sock)


if __name__ == "__main__":
    sys.exit(main())
