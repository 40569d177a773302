// Minimal assertions (JSR's @std/assert is unreachable here).
export function assert(cond: unknown, message = "assertion failed"): asserts cond {
  if (!cond) throw new Error(message);
}

function canonical(v: unknown): string {
  return JSON.stringify(
    v,
    (
      _k,
      x,
    ) => (x && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort())
      : x),
  );
}

export function assertEquals(actual: unknown, expected: unknown, message?: string): void {
  if (canonical(actual) !== canonical(expected)) {
    throw new Error(
      `${message ? message + ": " : ""}expected ${canonical(expected)}, got ${canonical(actual)}`,
    );
  }
}
