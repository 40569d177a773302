// Python code sent to the agent is named by the SHA-256 of its UTF-8 text; the agent checks the
// name against the text before it keeps anything (HASH_MISMATCH otherwise).

/** Python source sent to the agent, named by its SHA-256, with the libraries it requires. */
export interface Source {
  source: string;
  hash: string;
  /** Its REQUIRES: libraries the agent binds under their names once the code is loaded. */
  requires?: string[];
}

export async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The library names of a module-level `REQUIRES = ("a", "b")` line (none without one). */
export function requiresOf(source: string): string[] {
  const line = /^REQUIRES = \(([^)]*)\)/m.exec(source);
  return line ? [...line[1].matchAll(/"(\w+)"/g)].map((m) => m[1]) : [];
}

/** A snippet's or library's source, ready to send. */
export async function pythonSource(source: string): Promise<Source> {
  return { source, hash: await sha256(source), requires: requiresOf(source) };
}
