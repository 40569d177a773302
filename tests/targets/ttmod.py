# What the tt tests and bench record (tests/targets/tt_target.py calls it): a till whose
# methods are recorded together (ttmod.Till.*), a function taking big arguments, a small one.


class Till(object):
    def __init__(self):
        self.n = 0

    def price(self, item, qty=1, *, discount=0):
        return item["cost"] * qty - discount

    def fill(self, items):
        items.append("added inside")    # changes its argument: the record keeps it as it came
        return len(items)

    def fail(self, x):
        raise ValueError("bad %s" % x)

    def grow(self, by):
        self.n += by                     # a side effect a replay repeats
        return self.n


def ingest(blob):
    return len(blob)


def small(a, b):
    return a + b
