// An example peeka plugin: the target's environment variables, with values that
// look secret (passwords, tokens, keys) masked. Install: copy this folder into
// ~/.config/peeka/plugins/ (or pass --plugin-dir), then `peeka env 'DB_*'`.
import { defineCommand } from "peeka";
import snippet from "./snippet.py" with { type: "text" };

interface Variable {
  name: string;
  value: string;
  masked: boolean;
}

export default defineCommand({
  name: "env",
  version: "1.0.0",
  summary: "The target's environment variables (secret-looking values masked)",
  arguments: [{ name: "pattern", description: "only names matching this glob, e.g. 'DB_*'" }],
  options: [{ flags: "--show-secrets", description: "do not mask secret-looking values" }],
  snippet,
  request: (opts, args) => ({ pattern: args[0] ?? "*", show_secrets: Boolean(opts.showSecrets) }),
  render(data) {
    const vars = data.variables as Variable[];
    const width = Math.max(0, ...vars.map((v) => v.name.length));
    return [
      ...vars.map((v) => `${v.name.padEnd(width)}  ${v.value}`),
      `${vars.length} variable(s), ${vars.filter((v) => v.masked).length} masked`,
    ].join("\n");
  },
});
