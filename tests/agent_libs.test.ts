// The agent's condition evaluator and serialiser in depth, on every
// interpreter: the seed's examples, hostile conditions, resource bombs, and
// values that fight back (hostile __repr__, cycles, huge ints). See the script.
import { assert } from "./helpers/assert.ts";
import { pythons, REPO } from "./helpers/env.ts";

for (const py of pythons()) {
  Deno.test(`${py.version}: condition and serialize self-test`, async () => {
    const out = await new Deno.Command(py.path, {
      args: [`${REPO}/tests/agent/lib_selftest.py`],
      cwd: "/tmp",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert(out.code === 0 && /PASSED: 0 failure/.test(text), text.slice(-3000));
  });
}
