# Unit test of the memory snippet with a fake ctx (tests/helpers/snippet_ctx.py), on this
# interpreter's real tracemalloc. Run by tests/snippet_units.test.ts on every interpreter;
# alone: python3 commands/memory/snippet_test.py
import gc
import os
import sys
import threading
import time
import tracemalloc
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "helpers"))
from snippet_ctx import CommandError, FakeCtx, load_snippet  # noqa: E402

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


CALLS = []


class Meta(type):
    """A metaclass whose hash and equality are the target's code: types must not be hashed."""

    def __hash__(cls):
        CALLS.append("hash")
        return 1

    def __eq__(cls, other):
        CALLS.append("eq")
        return False


class Sized(object, metaclass=Meta):
    """A __sizeof__ written in Python is the target's code: sized by the type, never called."""

    def __sizeof__(self):
        CALLS.append("sizeof")
        return 10 ** 9


class Grower(object):
    pass


KEPT = []
BIG = dict.fromkeys(range(100000), KEPT)   # a tracked value: a dict of atomic values is not


class Holder(object):
    items = [None] * 200000


class Settings(object):
    def __init__(self):
        self.name, self.options = "x", [1, 2]


SETTINGS = Settings()     # holds none of the big containers: its __dict__ must not be made


class HeapCommands(unittest.TestCase):
    def setUp(self):
        del CALLS[:]
        self.sized = [Sized() for _ in range(50)]

    def test_no_code_of_the_target_runs(self):
        for args in ({"limit": 5}, {"growth": 0.05, "limit": 5}, {"by_module": True, "limit": 5}):
            result = snippet["run"](FakeCtx(), args)
            self.assertEqual(CALLS, [], args)
            self.assertNotIn("interrupted", [k for k, v in result.items() if v is True])
        row = [r for r in snippet["run"](FakeCtx(), {"limit": 200})["top_by_count"]
               if r["type"].endswith("Sized")]
        self.assertLess(row[0]["size_bytes"], 50 * 1000)

    def test_growth_names_what_grew(self):
        ctx = FakeCtx()
        grow = threading.Timer(0.1, lambda: KEPT.extend(Grower() for _ in range(3000)))
        grow.start()
        try:
            result = snippet["run"](ctx, {"growth": 0.4, "limit": 10})
        finally:
            grow.join()
        rows = dict((r["type"], r) for r in result["grew"])
        self.assertEqual(rows["%s.Grower" % __name__]["count_diff"], 3000)
        self.assertLessEqual(result["gil_max_ms"], result["gil_ms"])

    def test_growth_trace_leaves_a_running_tracemalloc_running(self):
        tracemalloc.start()
        try:
            result = snippet["run"](FakeCtx(), {"growth": 0.05, "trace": True, "limit": 5})
            self.assertTrue(tracemalloc.is_tracing())
            self.assertEqual(result["trace"]["tracemalloc_after"], "left running (it was before)")
        finally:
            tracemalloc.stop()
        snippet["run"](FakeCtx(), {"growth": 0.05, "trace": True, "limit": 5})
        self.assertFalse(tracemalloc.is_tracing())

    def test_by_module_names_the_owners_of_big_containers(self):
        result = snippet["run"](FakeCtx(), {"by_module": True, "limit": 10})
        owners = [c["referenced_from"] for c in result["containers"]]
        self.assertEqual(owners[:2], ["%s.BIG" % __name__, "%s.Holder.items" % __name__])
        dicts = [type(r) for r in gc.get_referents(SETTINGS) if type(r) is dict]
        self.assertEqual(dicts, [dict] if sys.version_info < (3, 11) else [], "no __dict__ made")

    def test_by_module_names_a_thread_local_through_a_chain(self):
        held, done = threading.Event(), threading.Event()

        def holder():
            cargo = [None] * 300000       # only this frame holds it: no global names it
            held.set()
            done.wait(30)
            return cargo

        thread = threading.Thread(target=holder, name="cargo-holder")
        thread.start()
        try:
            held.wait(10)
            result = snippet["run"](FakeCtx(), {"by_module": True, "limit": 3})
        finally:
            done.set()
            thread.join()
        cargo = [c for c in result["containers"] if c["len"] == 300000]
        self.assertIn('thread "cargo-holder" frame holder() local cargo', cargo[0]["referenced_from"])
        self.assertLessEqual(result["owner_chains_cost"]["gil_max_ms"], result["gil_max_ms"])

    def test_refusals(self):
        for args in ({"growth": 0}, {"trace": True}, {"growth": 1, "by_module": True}):
            with self.assertRaises(CommandError):
                snippet["run"](FakeCtx(), args)


if __name__ == "__main__":
    unittest.main()
