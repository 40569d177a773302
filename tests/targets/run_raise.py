# Target for tests/run.test.ts: the fourth call of work() raises, uncaught.
def work(i):
    if i == 3:
        raise ValueError("boom at %d" % i)
    return i


def main():
    for i in range(10):
        work(i)


main()
