// TypeScript plugins → JavaScript, in the CLI itself: a compiled peeka has no
// TypeScript emitter of its own for modules loaded at run time (docs/plugins.md),
// so types are stripped with sucrase (pure JavaScript, loaded only when a .ts
// plugin is found). JavaScript plugins are used as they are.
export async function toJavaScript(source: string, path: string): Promise<string> {
  if (!path.endsWith(".ts")) return source;
  const { transform } = await import("sucrase");
  try {
    return transform(source, {
      transforms: ["typescript"],
      disableESTransforms: true,
      filePath: path,
    }).code;
  } catch (e) {
    // sucrase says "Unexpected token (12:3)": keep the position, drop its internals.
    throw new Error(`syntax error: ${(e as Error).message.split("\n")[0]}`);
  }
}
