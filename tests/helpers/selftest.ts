// Running a Python self-test script (tests/agent/*.py, commands/*/snippet_test.py) under one
// interpreter: it passes when it exits 0 and prints its success line; otherwise the test fails
// with the end of what it printed.
import { assert } from "./assert.ts";

/** Runs `python args…` in /tmp (with PEEKA_SELFTEST_PYTHON set to it) and asserts it passed. */
export async function selfTest(
  python: string,
  args: string[],
  passed: RegExp = /PASSED: 0 failure/,
): Promise<void> {
  const out = await new Deno.Command(python, {
    args,
    cwd: "/tmp",
    env: { PEEKA_SELFTEST_PYTHON: python },
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert(out.code === 0 && passed.test(text), text.slice(-3000));
}
