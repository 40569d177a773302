# Checks for a Python self-test script (run by tests/helpers/selftest.ts): each failure is
# printed as it happens; finish() prints the success line the runner looks for, or the
# failures, and exits 1.
import sys

VERBOSE = "-v" in sys.argv
FAILURES = []


def check(label, ok, detail=""):
    if not ok:
        FAILURES.append(label)
        print("FAIL: %s %s" % (label, detail))
    elif VERBOSE:
        print("ok: %s" % label)


def finish():
    if FAILURES:
        print("FAILED: %d failure(s): %s" % (len(FAILURES), ", ".join(FAILURES)))
        sys.exit(1)
    print("PASSED: 0 failures")
