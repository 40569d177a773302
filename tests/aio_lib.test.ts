// The asyncio reader `tasks` relies on (agent/lib/aio.py), on every interpreter: fields of C and
// Python tasks, loops and threads read as data, no property or __getattr__ of the target run,
// also after a class gains a property once aio has read it. See the script.
import { pythons, REPO } from "./helpers/env.ts";
import { selfTest } from "./helpers/selftest.ts";

for (const py of pythons()) {
  Deno.test(`${py.version}: aio field reader self-test`, async () => {
    await selfTest(py.path, [`${REPO}/tests/agent/aio_selftest.py`]);
  });
}
