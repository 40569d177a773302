// Third-party command plugins: found in --plugin-dir, PEEKA_PLUGIN_PATH and
// ~/.config/peeka/plugins, loaded into the same registry as the built-ins.
//
// A plugin is `NAME.ts`/`NAME.js`, or a folder `NAME/` with `command.ts` or
// `command.js`, whose default export is a command definition (defineCommand),
// written exactly like a built-in command. A compiled peeka cannot import files
// that were not compiled into it, so a plugin is read as text and imported from a
// data: URL (see docs/plugins.md): its `import … from "peeka"` becomes a read of
// the API object below, and each text import of a file beside it (its Python
// snippet) becomes a string constant. Nothing else may be imported.
import { join } from "node:path";
import type { PeekaCommand } from "../core/command.ts";
import { toJavaScript } from "./transpile.ts";

export interface PluginProblem {
  path: string;
  error: string;
}

export interface PluginSet {
  commands: PeekaCommand[];
  problems: PluginProblem[];
}

/** What `import { … } from "peeka"` gives a plugin (set once by mod.ts). */
const API_KEY = Symbol.for("peeka.plugin-api");
export function providePluginApi(api: Record<string, unknown>): void {
  (globalThis as Record<symbol, unknown>)[API_KEY] = api;
}

const NAME = /^[a-z][a-z0-9-]{0,39}$/;

/** The folders searched, in order: --plugin-dir (repeatable), PEEKA_PLUGIN_PATH, the user's config. */
export function pluginDirs(argv: string[], env: (k: string) => string | undefined): string[] {
  const dirs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--plugin-dir" && argv[i + 1]) dirs.push(argv[++i]);
    else if (argv[i].startsWith("--plugin-dir=")) dirs.push(argv[i].slice("--plugin-dir=".length));
  }
  dirs.push(...(env("PEEKA_PLUGIN_PATH") ?? "").split(":").filter(Boolean));
  const config = env("XDG_CONFIG_HOME") || (env("HOME") ? join(env("HOME")!, ".config") : "");
  if (config) dirs.push(join(config, "peeka", "plugins"));
  return [...new Set(dirs)];
}

/** argv without the --plugin-dir options (they are read before the command line is parsed). */
export function withoutPluginDirs(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--plugin-dir") i++;
    else if (!argv[i].startsWith("--plugin-dir=")) out.push(argv[i]);
  }
  return out;
}

/** The plugin files in one folder (a missing folder has none). */
function candidates(dir: string): string[] {
  const found: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return found;
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, e.name);
    if (e.isFile && /\.(ts|js|mjs)$/.test(e.name) && !e.name.endsWith(".d.ts")) found.push(path);
    else if (e.isDirectory) {
      for (const main of ["command.ts", "command.js", "command.mjs"]) {
        try {
          if (Deno.statSync(join(path, main)).isFile) {
            found.push(join(path, main));
            break;
          }
        } catch { /* not this one */ }
      }
    }
  }
  return found;
}

/** Loads every plugin; a broken one becomes a problem naming its file, never an exception. */
export async function loadPlugins(dirs: string[], builtinNames: Set<string>): Promise<PluginSet> {
  const commands: PeekaCommand[] = [], problems: PluginProblem[] = [];
  const taken = new Map<string, string>();
  for (const dir of dirs) {
    for (const path of candidates(dir)) {
      try {
        const cmd = await loadPlugin(path);
        if (builtinNames.has(cmd.name)) {
          throw new Error(
            `'${cmd.name}' is a built-in command; a plugin cannot replace it (rename it)`,
          );
        }
        if (taken.has(cmd.name)) {
          throw new Error(`'${cmd.name}' is already defined by the plugin ${taken.get(cmd.name)}`);
        }
        taken.set(cmd.name, path);
        commands.push(cmd);
      } catch (e) {
        problems.push({ path, error: (e instanceof Error ? e.message : String(e)).split("\n")[0] });
      }
    }
  }
  return { commands, problems };
}

/**
 * Why a plugin file may not run, or null: peeka often runs as root, so a plugin runs only if
 * no one but this user and root can change it — the file and every directory above it (as
 * sudo and OpenSSH judge their files). A world-writable directory must be sticky (/tmp).
 */
export function untrusted(path: string): string | null {
  const me = Deno.uid() ?? 0;
  let at: string;
  try {
    at = Deno.realPathSync(path);
  } catch (e) {
    return (e as Error).message;
  }
  for (let first = true;; first = false) {
    const st = Deno.statSync(at);
    const mode = st.mode ?? 0;
    const what = first ? "the plugin" : `its folder ${at}`;
    if (st.uid !== me && st.uid !== 0) {
      return `${what} belongs to uid ${st.uid}: peeka runs only plugins that you or root own`;
    }
    const sticky = st.isDirectory && (mode & 0o1000) !== 0;
    if ((mode & 0o022) !== 0 && !sticky) {
      return `${what} can be changed by other users (mode ${(mode & 0o7777).toString(8)}); ` +
        `make it writable by its owner only (chmod go-w)`;
    }
    if (at === "/") return null;
    at = at.slice(0, at.lastIndexOf("/")) || "/";
  }
}

export async function loadPlugin(path: string): Promise<PeekaCommand> {
  const refused = untrusted(path);
  if (refused) throw new Error(refused);
  const source = Deno.readTextFileSync(path);
  const js = await toJavaScript(rewriteImports(source, path), path);
  const url = `data:text/javascript;base64,${base64(js)}`;
  const module = await import(url);
  const cmd = validate(module.default);
  if (cmd.snippet === undefined && !cmd.run) {
    try {
      cmd.snippet = Deno.readTextFileSync(join(path, "..", "snippet.py"));
    } catch {
      throw new Error(
        "no snippet: give the command a snippet (or a run function), or put snippet.py beside it",
      );
    }
  }
  return { ...cmd, origin: path };
}

const IMPORT =
  /^[ \t]*import\s+(type\s+)?([\s\S]*?)\s+from\s+(["'])([^"']+)\3\s*(with\s*\{[^}]*\})?\s*;?/gm;

/** The plugin's imports, replaced by reads of the API object and string constants. */
export function rewriteImports(source: string, path: string): string {
  return source.replace(IMPORT, (whole, isType, clause: string, _q, spec: string, attrs) => {
    const line = source.slice(0, source.indexOf(whole)).split("\n").length;
    if (spec === "peeka" || spec === "peeka/mod.ts") {
      if (isType) return "";
      const namespace = /^\*\s+as\s+([A-Za-z_$][\w$]*)$/.exec(clause.trim());
      if (namespace) return `const ${namespace[1]} = globalThis[Symbol.for("peeka.plugin-api")];`;
      const names = /^\{([\s\S]*)\}$/.exec(clause.trim());
      if (!names) {
        throw new Error(
          `line ${line}: import named things from "peeka", e.g. import { defineCommand } from "peeka", ` +
            `or all of them: import * as peeka from "peeka"`,
        );
      }
      const parts = names[1].split(",").map((s) => s.trim()).filter((s) =>
        s && !s.startsWith("type ")
      );
      const binds = parts.map((p) => p.replace(/\s+as\s+/, ": "));
      return `const { ${binds.join(", ")} } = globalThis[Symbol.for("peeka.plugin-api")];`;
    }
    if (spec.startsWith("./") && attrs && /type\s*:\s*["']text["']/.test(attrs)) {
      if (!/^[A-Za-z_$][\w$]*$/.test(clause.trim())) {
        throw new Error(
          `line ${line}: a text import needs a default name: import snippet from "${spec}" with { type: "text" }`,
        );
      }
      const text = Deno.readTextFileSync(join(path, "..", spec));
      return `const ${clause.trim()} = ${JSON.stringify(text)};`;
    }
    if (isType) return ""; // types only: nothing at run time
    throw new Error(
      `line ${line}: a plugin can import only from "peeka" and text files beside it, not "${spec}"`,
    );
  });
}

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

function validate(def: unknown): PeekaCommand {
  if (!def || typeof def !== "object") {
    throw new Error("the module must `export default defineCommand({ name, summary, ... })`");
  }
  const cmd = def as PeekaCommand;
  if (typeof cmd.name !== "string" || !NAME.test(cmd.name)) {
    throw new Error(
      `'name' must be a lowercase command name (letters, digits, -), got ${
        JSON.stringify(cmd.name)
      }`,
    );
  }
  if (typeof cmd.summary !== "string" || !cmd.summary) {
    throw new Error(`'summary' is missing (${cmd.name})`);
  }
  if (cmd.snippet !== undefined && typeof cmd.snippet !== "string") {
    throw new Error("'snippet' must be a string");
  }
  if (cmd.run !== undefined && typeof cmd.run !== "function") {
    throw new Error("'run' must be a function");
  }
  for (const o of cmd.options ?? []) {
    if (typeof o?.flags !== "string" || typeof o?.description !== "string") {
      throw new Error(`every option needs 'flags' and 'description' (${cmd.name})`);
    }
  }
  if (cmd.version !== undefined && typeof cmd.version !== "string") {
    throw new Error("'version' must be a string");
  }
  return cmd;
}
