// The instrumentation engine in depth, on every interpreter: every kind of
// function, every way of reaching it, descriptors kept, exact restoration,
// other tools' ids respected, results unchanged (see the script).
import { pythons, REPO } from "./helpers/env.ts";
import { selfTest } from "./helpers/selftest.ts";

for (const py of pythons()) {
  Deno.test(`${py.version}: instrumentation engine self-test`, async () => {
    await selfTest(py.path, [`${REPO}/tests/agent/instrument_selftest.py`]);
  });
}
