// The agent's condition evaluator and serialiser in depth, on every
// interpreter: the seed's examples, hostile conditions, resource bombs, and
// values that fight back (hostile __repr__, cycles, huge ints). See the script.
import { pythons, REPO } from "./helpers/env.ts";
import { selfTest } from "./helpers/selftest.ts";

for (const py of pythons()) {
  Deno.test(`${py.version}: condition and serialize self-test`, async () => {
    await selfTest(py.path, [`${REPO}/tests/agent/lib_selftest.py`]);
  });
}
