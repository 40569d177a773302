// The agent's wire protocol in depth, on every interpreter: streaming, cancel,
// disconnects, malformed frames, limits (connection cap, frame budget and
// deadline, a flood with the target's memory measured), hash checks, peer
// checks, second bootstrap, detach and exit events. The Python scripts bootstrap
// the agent with the injector's exact string inside real target processes and
// check every reply (see their docstrings); the fuzz of the frame reader runs a
// couple of seconds with a fresh seed each time, printed so a failure replays.
import { assert } from "./helpers/assert.ts";
import { pythons, REPO } from "./helpers/env.ts";

async function runScript(python: string, script: string): Promise<void> {
  const out = await new Deno.Command(python, {
    args: [`${REPO}/tests/agent/${script}`],
    cwd: "/tmp",
    env: { PEEKA_SELFTEST_PYTHON: python },
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert(out.code === 0 && /PASSED: 0 failure/.test(text), text.slice(-3000));
}

for (const py of pythons()) {
  Deno.test(`${py.version}: agent protocol self-test`, async () => {
    await runScript(py.path, "protocol_selftest.py");
  });
  Deno.test(`${py.version}: agent frame reader fuzz`, async () => {
    await runScript(py.path, "frame_fuzz.py");
  });
}
