// The agent's wire protocol in depth, on every interpreter: streaming, cancel,
// disconnects, malformed frames, peer checks, second bootstrap, detach. The
// Python script bootstraps the agent with the injector's exact string inside
// real target processes and checks every reply (see its docstring).
import { assert } from "./helpers/assert.ts";
import { pythons, REPO } from "./helpers/env.ts";

for (const py of pythons()) {
  Deno.test(`${py.version}: agent protocol self-test`, async () => {
    const out = await new Deno.Command(py.path, {
      args: [`${REPO}/tests/agent/protocol_selftest.py`],
      cwd: "/tmp",
      env: { PEEKA_SELFTEST_PYTHON: py.path },
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert(out.code === 0 && /PASSED: 0 failure/.test(text), text.slice(-3000));
  });
}
