// Python code sent to the agent is named by the SHA-256 of its UTF-8 text; the agent checks the
// name against the text before it keeps anything (HASH_MISMATCH otherwise).

/** Python source sent to the agent, named by its SHA-256. */
export interface Source {
  source: string;
  hash: string;
}

export async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
