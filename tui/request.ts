// A command's request as its command line would build it: every option at its
// declared default (commander's camelCase names), then the TUI's own choices.
import type { Options, PeekaCommand } from "../core/command.ts";

const camel = (flags: string) =>
  (/--([a-z0-9-]+)/.exec(flags)?.[1] ?? "").replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());

export function requestFor(
  cmd: PeekaCommand,
  args: string[],
  overrides: Options = {},
): Record<string, unknown> {
  const opts: Options = {};
  for (const o of cmd.options ?? []) {
    if (o.default !== undefined) opts[camel(o.flags)] = o.default;
  }
  return cmd.request?.({ ...opts, ...overrides }, args) ?? {};
}
