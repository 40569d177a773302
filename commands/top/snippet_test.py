# Unit test of top's agent sampler: run(ctx, args) samples a real busy thread of this
# interpreter, streams through a fake ctx (tests/helpers/snippet_ctx.py) and stops when the
# ctx is cancelled, when -d is over, or when the client is gone. Run by
# tests/snippet_units.test.ts on every interpreter; alone: python3 commands/top/snippet_test.py
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "helpers"))
from snippet_ctx import CommandError, FakeCtx, load_snippet  # noqa: E402

snippet = load_snippet("top")


def burn(stop):
    n = 0
    while not stop.is_set():
        n += 1
    return n


class GoneClient(FakeCtx):
    """A client that went away: every emit after the first fails, as a closed connection does."""

    def emit(self, obj):
        FakeCtx.emit(self, obj)
        return len(self.emitted) == 1


class TopSnippet(unittest.TestCase):
    def setUp(self):
        self.stop = threading.Event()
        self.burner = threading.Thread(target=burn, args=(self.stop,), name="burner")
        self.burner.start()
        self.ctx = FakeCtx()
        self.ctx.agent.thread_idents.add(threading.get_ident())  # this thread plays the agent's

    def tearDown(self):
        self.stop.set()
        self.burner.join()

    def sample(self, **args):
        args.setdefault("interval_ms", 2)
        return snippet["run"](self.ctx, args)

    def kinds(self):
        return [f.get("event") or f["type"] for f in self.ctx.emitted]

    def test_cancel_ends_sampling_with_the_final_table_profile_and_summary(self):
        threading.Timer(0.4, self.ctx.cancelled.set).start()
        summary = self.sample(refresh=0.1)
        kinds = self.kinds()
        self.assertEqual(kinds[0], "top_started")
        self.assertEqual(kinds[-3:], ["observation", "profile", "top_stopped"])
        self.assertIn("observation", kinds[1:-3], "tables while it ran")
        final = self.ctx.emitted[-3]
        self.assertTrue(final["final"])
        burner = [row for row in final["functions"] if row["function"] == "__main__.burn"]
        self.assertTrue(burner and burner[0]["total_pct"] > 50, final["functions"])
        self.assertEqual(self.ctx.emitted[-1]["data"], summary)
        self.assertGreater(summary["thread_samples"], 0)

    def test_the_agents_own_threads_are_never_sampled(self):
        self.sample(duration=0.2)
        stacks = [stack for stack, _ in self.ctx.emitted[-2]["stacks"]]
        self.assertTrue(stacks)
        self.assertTrue(all("test_the_agents_own_threads" not in s for s in stacks), stacks)

    def test_a_duration_ends_it_without_a_cancel(self):
        summary = self.sample(duration=0.15)
        self.assertFalse(self.ctx.cancelled.is_set())
        self.assertGreaterEqual(summary["seconds"], 0.15)

    def test_a_gone_client_ends_it_at_the_next_table(self):
        self.ctx = GoneClient()
        self.ctx.agent.thread_idents.add(threading.get_ident())
        summary = self.sample(refresh=0.05)
        self.assertLess(summary["seconds"], 5)

    def test_bad_numbers_are_refused(self):
        for args in ({"interval_ms": 0.5}, {"duration": 0}, {"limit": 501}):
            with self.assertRaises(CommandError) as caught:
                snippet["run"](self.ctx, args)
            self.assertEqual(caught.exception.code, "BAD_ARGS")
        self.assertEqual(self.ctx.emitted, [])


if __name__ == "__main__":
    unittest.main()
