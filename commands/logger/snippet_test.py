# Unit test of the logger snippet's run(ctx, args), on this interpreter's real logging module,
# with a fake ctx (tests/helpers/snippet_ctx.py). Run by tests/snippet_units.test.ts on every
# interpreter; alone: python3 commands/logger/snippet_test.py
import logging
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "helpers"))
from snippet_ctx import CommandError, FakeCtx, load_snippet  # noqa: E402

snippet = load_snippet("logger")


class LoggerSnippet(unittest.TestCase):
    def setUp(self):
        self.db = logging.getLogger("shopapp.db")
        self.web = logging.getLogger("shopapp.web")
        self.db.setLevel(logging.NOTSET)
        self.ctx = FakeCtx()

    def run_snippet(self, **args):
        return snippet["run"](self.ctx, args)

    def failure(self, **args):
        with self.assertRaises(CommandError) as caught:
            self.run_snippet(**args)
        return caught.exception

    def test_lists_the_loggers_a_pattern_matches(self):
        listed = self.run_snippet(pattern="shopapp.*")
        self.assertEqual(listed["action"], "list")
        self.assertEqual([lg["name"] for lg in listed["loggers"]], ["shopapp.db", "shopapp.web"])
        self.assertEqual(listed["count"], 2)

    def test_a_set_level_is_restored_on_detach_to_the_first_original(self):
        changed = self.run_snippet(name="shopapp.db", level="debug")
        self.assertEqual((changed["old_level"], changed["new_level"]), ("NOTSET", "DEBUG"))
        self.assertEqual(self.db.level, logging.DEBUG)
        self.run_snippet(name="shopapp.db", level="40")
        self.assertEqual(self.db.level, logging.ERROR)
        self.assertEqual(self.ctx.agent.state["logger_levels"], {"shopapp.db": logging.NOTSET})
        self.assertEqual(list(self.ctx.agent.detach_hooks), ["logger"])
        self.ctx.agent.detach()
        self.assertEqual(self.db.level, logging.NOTSET)
        self.assertNotIn("logger_levels", self.ctx.agent.state)

    def test_a_forked_child_gets_the_targets_levels(self):
        self.run_snippet(name="shopapp.db", level="DEBUG")
        snippet["after_fork_in_child"]()  # what the agent calls in a child it was forked into
        self.assertEqual(self.db.level, logging.NOTSET)
        self.assertNotIn("logger_levels", self.ctx.agent.state)

    def test_reset_puts_levels_back_and_says_which(self):
        self.run_snippet(name="shopapp.db", level="WARNING")
        reset = self.run_snippet(reset=True)
        self.assertEqual(reset["restored"], [{"name": "shopapp.db", "level": "NOTSET"}])
        self.assertEqual(self.db.level, logging.NOTSET)

    def test_usage_errors_have_their_codes(self):
        self.assertEqual(self.failure(name="shopapp.db", level="LOUD").code, "BAD_ARGS")
        self.assertEqual(self.failure(level="DEBUG").code, "BAD_ARGS")
        missing = self.failure(name="shopapp.dbx")
        self.assertEqual(missing.code, "NOT_FOUND")
        self.assertIn("similar: shopapp", str(missing))
        self.assertEqual(self.db.level, logging.NOTSET)

    def test_a_target_without_logging_has_no_loggers(self):
        saved = sys.modules.pop("logging")
        try:
            self.assertEqual(self.failure().code, "NOT_LOADED")
        finally:
            sys.modules["logging"] = saved

    def test_emits_nothing(self):
        self.run_snippet(pattern="*")
        self.assertEqual(self.ctx.emitted, [])


if __name__ == "__main__":
    unittest.main()
