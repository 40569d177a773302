// The readers `tasks`, `thread`, `top` and `trace` rely on (agent/lib/aio.py, agent/lib/threads.py),
// on every interpreter: fields of C and Python tasks, loops and threads read as data, modules read
// without loading a lazily loaded one, and no property, __getattr__ or proxy of the target run
// (also after a class gains a property once aio has read it). See the scripts.
import { pythons, REPO } from "./helpers/env.ts";
import { selfTest } from "./helpers/selftest.ts";

for (const py of pythons()) {
  Deno.test(`${py.version}: aio and threads reader self-tests`, async () => {
    await selfTest(py.path, [`${REPO}/tests/agent/aio_selftest.py`]);
    await selfTest(py.path, [`${REPO}/tests/agent/threads_selftest.py`]);
  });
}
