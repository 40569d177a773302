def small(x, y):
    return x + y
