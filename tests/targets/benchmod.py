def small(x, y):
    return x + y


def hundred():
    """A call with 100 inner calls: what trace's own slowdown is measured on."""
    total = 0
    for i in range(100):
        total += small(i, 1)
    return total
