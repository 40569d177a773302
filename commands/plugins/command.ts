// plugins: every command with where it comes from, and the plugins that failed to load.
import { defineCommand } from "../../core/command.ts";
import { VERSION } from "../../core/version.ts";

export default defineCommand({
  name: "plugins",
  summary: "List every command with its origin (built-in or plugin file) and version",
  description:
    "Plugins are read from --plugin-dir DIR (repeatable), PEEKA_PLUGIN_PATH (colon-separated) " +
    "and $XDG_CONFIG_HOME/peeka/plugins (~/.config/peeka/plugins). See docs/plugins.md.",
  needsTarget: false,
  run(ctx) {
    const commands = ctx.registry.commands.map((c) => ({
      name: c.name,
      origin: c.origin ?? "built-in",
      version: c.origin === "built-in" || !c.origin ? VERSION : c.version ?? null,
      summary: c.summary,
    }));
    const data = { commands, problems: ctx.registry.problems, searched: ctx.registry.dirs ?? [] };
    ctx.out.result("plugins", data, () => {
      const lines = commands.map((c) =>
        `${c.name.padEnd(12)} ${(c.version ?? "-").padEnd(8)} ${c.origin}`
      );
      for (const p of ctx.registry.problems) lines.push(`NOT LOADED   ${p.path}: ${p.error}`);
      lines.push(`searched: ${(ctx.registry.dirs ?? []).join(", ") || "(nothing)"}`);
      return lines.join("\n");
    });
    return Promise.resolve(0);
  },
});
