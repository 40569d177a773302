// The agent's one source is joined from its parts (agent/*.py) by agent/embed.ts; the Python
// tests join them again through tests/helpers/agent_source.py. Both must give the same text, or
// the Python tests would exercise another agent than the one the CLI injects.
import { AGENT_SOURCE } from "../agent/embed.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { pythons, REPO } from "./helpers/env.ts";

Deno.test("the Python tests join the agent's parts as the CLI embeds them", async () => {
  const out = await new Deno.Command(pythons()[0].path, {
    args: ["-B", "-c", "import agent_source, sys; sys.stdout.write(agent_source.agent_source())"],
    cwd: `${REPO}/tests/helpers`,
  }).output();
  assert(out.code === 0, new TextDecoder().decode(out.stderr));
  assertEquals(new TextDecoder().decode(out.stdout), AGENT_SOURCE);
});
