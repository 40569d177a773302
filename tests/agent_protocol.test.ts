// The agent's wire protocol in depth, on every interpreter: streaming, cancel,
// disconnects, malformed frames, limits (connection cap, frame budget and
// deadline, a flood with the target's memory measured), hash checks, peer
// checks, second bootstrap, detach and exit events. The Python scripts bootstrap
// the agent with the injector's exact string inside real target processes and
// check every reply (see their docstrings); the fuzz of the frame reader runs a
// couple of seconds with a fresh seed each time, printed so a failure replays.
import { pythons, REPO } from "./helpers/env.ts";
import { selfTest } from "./helpers/selftest.ts";

for (const py of pythons()) {
  Deno.test(`${py.version}: agent protocol self-test`, async () => {
    await selfTest(py.path, [`${REPO}/tests/agent/protocol_selftest.py`]);
  });
  Deno.test(`${py.version}: agent frame reader fuzz`, async () => {
    await selfTest(py.path, [`${REPO}/tests/agent/frame_fuzz.py`]);
  });
}
