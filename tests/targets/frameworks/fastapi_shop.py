# A FastAPI app under uvicorn (both from the framework environment) for trace and watch of
# async code: GET /quote/<cur>?amount=N awaits fetch_rate, which awaits asyncio.sleep(SLEEP);
# GET /crunch does CPU work in small steps between awaits (other requests on the same loop).
# Prints "ready <pid> <port>" once uvicorn serves.
import asyncio
import sys

from asgi_serve import announcing, listener, serve
from fastapi import FastAPI

SLEEP = 0.05
RATES = {"EUR": 1.5, "GBP": 2.0}
LISTENER = listener()
app = FastAPI(lifespan=announcing(LISTENER))


async def fetch_rate(cur):
    await asyncio.sleep(SLEEP)
    return RATES[cur]


def crunch(n):
    return sum(i * i for i in range(n))


@app.get("/quote/{cur}")
async def quote(cur: str, amount: float = 10.0):
    rate = await fetch_rate(cur)
    return {"cur": cur, "total": round(amount * rate, 2)}


@app.get("/crunch")
async def crunch_steps(steps: int = 20):
    total = 0
    for _ in range(steps):
        total += crunch(3000)
        await asyncio.sleep(0)
    return {"total": total}


def main():
    serve(app, LISTENER)


if __name__ == "__main__":
    sys.exit(main())
