// The layering check catches what it is for: an import that points up, and a command importing
// another command's files; the repository itself has no such import beyond the pending ones.
import { assert, assertEquals } from "./helpers/assert.ts";
import { check, judge, PENDING } from "../tools/layers.ts";

Deno.test("layers: an upward import and a command importing another are caught", () => {
  const root = Deno.makeTempDirSync({ prefix: "peeka-layers-" });
  try {
    for (const dir of ["core", "attach", "commands/ps", "commands/thread"]) {
      Deno.mkdirSync(`${root}/${dir}`, { recursive: true });
    }
    Deno.writeTextFileSync(`${root}/attach/attach.ts`, "export const attach = 1;\n");
    Deno.writeTextFileSync(`${root}/core/ok.ts`, 'import { x } from "../process/libc.ts";\n');
    Deno.writeTextFileSync(
      `${root}/core/planted.ts`,
      'import {\n  attach,\n} from "../attach/attach.ts";\nexport const y = attach;\n',
    );
    Deno.writeTextFileSync(
      `${root}/commands/ps/command.ts`,
      'const t = await import("../thread/command.ts");\n',
    );
    const found = check(root).map((v) => `${v.from} -> ${v.to}`).sort();
    assertEquals(found, [
      "commands/ps/command.ts -> commands/thread/command.ts",
      "core/planted.ts -> attach/attach.ts",
    ]);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("layers: the repository points down, but for the pending imports", () => {
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const left = check(root).filter((v) => !PENDING.has(`${v.from} -> ${v.to}`));
  assertEquals(left, []);
  assert(judge("commands/registry.ts", "commands/watch/command.ts") === null, "the registry");
  assert(judge("tui/app.tsx", "commands/registry.ts") === null, "the TUI through the registry");
});
