# Unit test of tt's ring (agent/lib/tunnel.py) and of --search/--show/--clear over it, with a
# fake ctx (tests/helpers/snippet_ctx.py). Run by tests/snippet_units.test.ts on every
# interpreter; alone: python3 commands/tt/snippet_test.py
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "helpers"))
from snippet_ctx import CommandError, FakeAgent, FakeCtx, load_snippet  # noqa: E402

agent = FakeAgent()
snippet = load_snippet("tt", agent)
tunnel = agent.lib("tunnel")


class Hostile(object):
    """Every hook a size estimate might be tempted to call fails the test."""
    def __init__(self):
        self.payload = "x" * 10000

    def __sizeof__(self):
        raise AssertionError("__sizeof__ of the target's class ran")

    def __len__(self):
        raise AssertionError("__len__ of the target's class ran")

    def __getattribute__(self, name):
        if name == "__dict__":
            raise AssertionError("__getattribute__ of the target's class ran")
        return object.__getattribute__(self, name)


class Items(list):
    def __iter__(self):
        raise AssertionError("__iter__ of a list subclass ran")

    def __len__(self):
        raise AssertionError("__len__ of a list subclass ran")


def record(data, objects=None, size=100, arg_names=("x",)):
    base = {"index": None, "args": [], "kwargs": {}, "target": None, "result": None, "exception": None,
            "duration_ms": 0.0, "func_name": "m.f", "depth": 2}
    base.update(data)
    return tunnel.Record(base, objects, size, arg_names)


class Ring(unittest.TestCase):
    def test_held_size_counts_instances_and_containers_without_their_code(self):
        size = tunnel.held_size((Hostile(), Items(range(1000))))
        self.assertGreater(size, 10000 + 1000 * 8)   # the payload str, the list's pointers

    def test_a_large_container_is_extrapolated_from_a_sample(self):
        small, large = tunnel.held_size(([10 ** 6 + i for i in range(10)],)), \
            tunnel.held_size(([10 ** 6 + i for i in range(100000)],))
        self.assertGreater(large, 100000 * (8 + 24))   # pointers and the ints they point to
        self.assertLess(small, large / 1000)

    def test_bounded_by_count_and_bytes_oldest_first(self):
        ring = tunnel.Tunnel(3, 1000)
        for i in range(5):
            ring.add(record({"args": [i]}))
        self.assertEqual([r.data["args"] for r in ring.all()], [[2], [3], [4]])
        self.assertEqual(ring.stats()["evicted"], 2)
        ring.add(record({"args": [5]}, size=901))   # leaves room for nothing else
        self.assertEqual([r.data["args"] for r in ring.all()], [[5]])
        self.assertIsNone(ring.add(record({}, size=1001)))
        self.assertEqual(ring.stats()["too_big"], 1)
        first = ring.all()[0]
        self.assertIs(ring.get(first.index), first)
        self.assertIsNone(ring.get(first.index - 1))
        self.assertIsNone(ring.get(first.index + 1))

    def test_close_stops_recordings_and_drops_every_reference(self):
        ring = tunnel.Tunnel(10, 10 ** 6)
        stop = threading.Event()
        ring.recordings["tt_1"] = stop
        kept = record({}, objects=(len, (object(),), {}, None, False, "function"))
        ring.add(kept)
        self.assertEqual(ring.close(), 1)
        self.assertTrue(stop.is_set())
        self.assertIsNone(kept.objects)
        self.assertIsNone(ring.add(record({})))     # closed: a late call adds nothing


class Commands(unittest.TestCase):
    def setUp(self):
        self.ring = agent.state["tt"] = tunnel.Tunnel(100, 10 ** 6)
        self.ring.add(record({"args": [1], "result": 2}))
        self.ring.add(record({"args": [5], "result": None, "exception": {"type": "ValueError"}}))

    def answer(self, args):
        ctx = FakeCtx(agent, args)
        snippet["run"](ctx, args)
        return ctx.emitted[-1]

    def test_search_by_parameter_name_result_and_exception(self):
        found = self.answer({"mode": "search", "expression": "x > 3 or result == 2"})
        self.assertEqual([r["args"] for r in found["records"]], [[1], [5]])
        failed = self.answer({"mode": "search", "expression": "exception['type'] == 'ValueError'"})
        self.assertEqual([r["args"] for r in failed["records"]], [[5]])
        self.assertEqual(failed["condition_errors"], 1)   # None['type']: counted, the search goes on
        guarded = self.answer({"mode": "search",
                               "expression": "exception is not None and exception['type'] == 'ValueError'"})
        self.assertEqual([[r["args"] for r in guarded["records"]], guarded["condition_errors"]], [[[5]], 0])

    def test_show_trims_to_depth_and_refuses_a_missing_index(self):
        self.ring.add(record({"args": [[[1, 2]]]}))
        shown = self.answer({"mode": "show", "index": self.ring.all()[-1].index, "depth": 1})
        self.assertEqual(shown["record"]["args"], ["[[1, 2]]"])
        with self.assertRaises(CommandError):
            self.answer({"mode": "show", "index": 1})

    def test_clear_forgets_the_ring(self):
        self.assertEqual(self.answer({"mode": "clear"})["cleared"], 2)
        self.assertNotIn("tt", agent.state)
        self.assertIsNone(self.answer({"mode": "list"})["store"])


if __name__ == "__main__":
    unittest.main()
