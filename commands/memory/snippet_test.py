# Unit test of the memory snippet with a fake ctx (tests/helpers/snippet_ctx.py), on this
# interpreter's real tracemalloc. Run by tests/snippet_units.test.ts on every interpreter;
# alone: python3 commands/memory/snippet_test.py
import os
import sys
import threading
import time
import tracemalloc
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "helpers"))
from snippet_ctx import FakeCtx, load_snippet  # noqa: E402

snippet = load_snippet("memory")


class MemorySnippet(unittest.TestCase):
    def tracing_run(self, ctx):
        """A `memory --trace 30` running in a thread, as on the agent's; returns the thread."""
        call = threading.Thread(target=snippet["run"], args=(ctx, {"trace": 30}))
        call.start()
        deadline = time.monotonic() + 10
        while not tracemalloc.is_tracing() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(tracemalloc.is_tracing(), "the trace started tracemalloc")
        return call

    def test_a_child_forked_during_a_trace_stops_tracemalloc(self):
        ctx = FakeCtx()
        call = self.tracing_run(ctx)
        try:
            snippet["after_fork_in_child"]()  # what the agent calls in a child forked now
            self.assertFalse(tracemalloc.is_tracing())
        finally:
            ctx.cancelled.set()
            call.join(10)

    def test_the_hook_leaves_a_tracemalloc_the_target_started(self):
        tracemalloc.start()
        try:
            snippet["after_fork_in_child"]()
            self.assertTrue(tracemalloc.is_tracing())
        finally:
            tracemalloc.stop()


if __name__ == "__main__":
    unittest.main()
