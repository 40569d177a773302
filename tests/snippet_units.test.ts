// Every snippet unit test (commands/<name>/snippet_test.py: a snippet's run() with a fake ctx,
// see tests/helpers/snippet_ctx.py) on every interpreter.
import { assert } from "./helpers/assert.ts";
import { pythons, REPO } from "./helpers/env.ts";

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
      const out = await new Deno.Command(py.path, {
        args: ["-B", `${REPO}/${path}`],
        cwd: "/tmp",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert(out.code === 0 && /\nOK/.test(text), text.slice(-3000));
    });
  }
}
