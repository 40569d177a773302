// The layering check (part of `deno task check`): every import of the program's own files must
// point down the layer order written in docs/architecture.md ("Layers"), and a command's folder
// never imports another command's. Exits 1 and names each import that breaks the rule.
//
//   deno run --allow-read tools/layers.ts [root]

/** Lowest first. A file may import its own layer and the layers before it. */
export const LAYERS: readonly (readonly string[])[] = [
  ["process/"], // ground floor: /proc, libc FFI, ELF, process memory, safe fs, thread freezing
  ["agent/"], // the agent's Python and libraries, embedded as text
  ["core/"], // wire protocol, sessions, the command model, output, the CLI's runner
  ["attach/"], // getting the agent into a target and out again
  ["commands/"], // one folder per command, and the registry that lists them
  ["plugins/"], // loading third-party commands
  ["tui/"], // the terminal UI: uses commands through the registry
  ["mod.ts"], // the entry point and the plugin API
];

/**
 * Upward imports that exist today and are being removed by their owners (issue 19). Each is
 * reported as a warning, not an error; the list must end empty.
 */
export const PENDING: ReadonlyMap<string, string> = new Map([]);

/** Folders outside the program: they may import anything. */
const UNCHECKED = ["tests/", "bench/", "examples/", "tools/", "node_modules/", "vendor/", "dist/"];

export interface Violation {
  from: string;
  to: string;
  why: string;
}

/** The layer of a repository-relative path, or -1 when it is not part of the layered program. */
export function layerOf(path: string): number {
  return LAYERS.findIndex((prefixes) => prefixes.some((p) => path === p || path.startsWith(p)));
}

/** `commands/watch/snippet.py` → `watch`; the registry and other top-level files → null. */
function commandFolder(path: string): string | null {
  const parts = path.split("/");
  return parts[0] === "commands" && parts.length > 2 ? parts[1] : null;
}

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s[^"'`;]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm;

/** The relative specifiers a source file imports (static, re-exports, dynamic with a literal). */
export function importsOf(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec.startsWith(".")) found.push(spec);
  }
  return found;
}

function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "..") out.pop();
    else if (part !== "." && part !== "") out.push(part);
  }
  return out.join("/");
}

/** What is wrong with one import, or null when it points where it may. */
export function judge(from: string, to: string): string | null {
  const [a, b] = [layerOf(from), layerOf(to)];
  if (a < 0 || b < 0) return null;
  if (b > a) return `${LAYERS[a][0]} may not import from the layer above it (${LAYERS[b][0]})`;
  const [ca, cb] = [commandFolder(from), commandFolder(to)];
  if (ca && cb && ca !== cb) return "a command does not import another command's files";
  return null;
}

/** Every violation in the sources under root (file paths relative to root). */
export function check(root: string): Violation[] {
  const found: Violation[] = [];
  for (const file of sourceFiles(root, "")) {
    const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/")) : "";
    for (const spec of importsOf(Deno.readTextFileSync(`${root}/${file}`))) {
      const to = normalize(`${dir}/${spec}`);
      const why = judge(file, to);
      if (why) found.push({ from: file, to, why });
    }
  }
  return found;
}

function* sourceFiles(root: string, dir: string): Generator<string> {
  for (const entry of Deno.readDirSync(`${root}/${dir}`)) {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.name.startsWith(".") || UNCHECKED.some((u) => `${path}/`.startsWith(u))) continue;
    if (entry.isDirectory) yield* sourceFiles(root, path);
    else if (/\.tsx?$/.test(entry.name)) yield path;
  }
}

if (import.meta.main) {
  const root = Deno.args[0] ?? new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  let errors = 0;
  const seen = new Set<string>();
  for (const v of check(root)) {
    const edge = `${v.from} -> ${v.to}`;
    seen.add(edge);
    if (PENDING.has(edge)) console.error(`layers: pending: ${edge}: ${PENDING.get(edge)}`);
    else {
      console.error(`layers: ${v.from} imports ${v.to}: ${v.why}`);
      errors++;
    }
  }
  for (const edge of PENDING.keys()) {
    if (!seen.has(edge)) console.error(`layers: ${edge} is gone: remove it from PENDING`);
  }
  if (errors) Deno.exit(1);
}
