// The instrumentation engine in depth, on every interpreter: every kind of
// function, every way of reaching it, descriptors kept, exact restoration,
// other tools' ids respected, results unchanged (see the script).
import { assert } from "./helpers/assert.ts";
import { pythons, REPO } from "./helpers/env.ts";

for (const py of pythons()) {
  Deno.test(`${py.version}: instrumentation engine self-test`, async () => {
    const out = await new Deno.Command(py.path, {
      args: [`${REPO}/tests/agent/instrument_selftest.py`],
      cwd: "/tmp",
      env: { PEEKA_SELFTEST_PYTHON: py.path },
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert(out.code === 0 && /PASSED: 0 failure/.test(text), text.slice(-3000));
  });
}
