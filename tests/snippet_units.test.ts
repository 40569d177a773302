// Every snippet unit test (commands/<name>/snippet_test.py: a snippet's run() with a fake ctx,
// see tests/helpers/snippet_ctx.py) on every interpreter.
import { pythons, REPO } from "./helpers/env.ts";
import { selfTest } from "./helpers/selftest.ts";

const snippetTests = [...Deno.readDirSync(`${REPO}/commands`)]
  .filter((dir) => dir.isDirectory)
  .map((dir) => `commands/${dir.name}/snippet_test.py`)
  .filter((path) => {
    try {
      return Deno.statSync(`${REPO}/${path}`).isFile;
    } catch {
      return false;
    }
  })
  .sort();

for (const py of pythons()) {
  for (const path of snippetTests) {
    Deno.test(`${py.version}: ${path}`, async () => {
      await selfTest(py.path, ["-B", `${REPO}/${path}`], /\nOK/);
    });
  }
}
