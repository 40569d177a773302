# A small module with every kind of function peeka must be able to watch.
import asyncio
import functools
import json
import logging
import time


def add(x, y):
    return x + y


def divide(x, y):
    return x / y


class Order(object):
    def __init__(self, total):
        self.total = total


def checkout(order, coupon=None, *, express=False):
    order.total = round(order.total * (0.9 if coupon else 1.0), 2)
    return order.total + (5 if express else 0)


def mutate(items):
    items.append("added")
    return len(items)


class Calc(object):
    factor = 2

    def scale(self, x):
        return x * self.factor

    @staticmethod
    def twice(x):
        return 2 * x

    @classmethod
    def make(cls, factor):
        c = cls()
        c.factor = factor
        return c

    class Inner(object):
        def deep(self, v):
            return v - 1


async def fetch(x):
    await asyncio.sleep(0.01)
    return x * 10


async def fetch_fail(x):
    await asyncio.sleep(0.005)
    raise KeyError(x)


def countdown(n):
    while n > 0:
        yield n
        n -= 1
    return "done"


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


@logged
def greet(name):
    return "hi " + name


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


# Ways of reaching add() that exist before any watch: an alias and a registry.
alias = add
HANDLERS = {"add": add}


# --- for trace: a known call tree ------------------------------------------------
class Calculator(object):
    def calculate(self, values):
        self._validate(values)
        total = self._compute(values)
        log_info("total %s" % total)
        return total

    def _validate(self, values):
        for v in values:
            check(v)

    def _compute(self, values):
        time.sleep(0.03)            # the slow branch
        return sum([square(v) for v in values])


def check(v):
    if v < 0:
        raise ValueError("negative: %s" % v)


def square(v):
    return v * v


def log_info(message):
    return json.dumps({"message": message})   # standard library: hidden by --skip-builtin


def risky(values):
    try:
        check(-1)
    except ValueError:
        pass
    return square(len(values))


async def fetch_tree(x):
    await asyncio.sleep(0.01)
    y = square(x)
    await asyncio.sleep(0.01)
    return y + square(1)


# --- for logger ---------------------------------------------------------------
log = logging.getLogger("shop.orders")
log.setLevel(logging.INFO)
log.addHandler(logging.NullHandler())


class CheckoutService(object):
    """Takes orders."""

    def __init__(self, region, *, retries=3):
        self.region = region

    def get_total(self, order):
        return order.total

    def get_items(self, order):
        return []

    @staticmethod
    def version():
        return 1

    @property
    def name(self):
        return "checkout"


# --- for inspect -----------------------------------------------------------------
class Cache(object):
    def __init__(self):
        self.entries = {"users": [1, 2, 3], "ttl": 60}
        self.hits = 7
        self._misses = 2

    @property
    def stats(self):
        return {"hits": self.hits, "misses": self._misses}

    @property
    def broken(self):
        raise RuntimeError("cannot compute")


class Sneaky(object):
    def __getattr__(self, name):           # inspect must never call this
        raise AssertionError("__getattr__ was called for %s" % name)


CACHE = Cache()
SNEAKY = Sneaky()
ORDERS = [Order(10), Order(20), Order(30)]
HOARD = []
