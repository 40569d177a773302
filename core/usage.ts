// Checks of the numbers the instrumenting commands (watch, stack, monitor, trace) take: a value that makes no sense is a
// usage error (exit 2, code USAGE) before anything is sent to the target.
import { UsageError } from "./command.ts";

/** -n: -1 (until Ctrl-C) or a positive count; 0 and other negatives are refused. */
export function times(value: unknown, what: string): number {
  const n = Number(value);
  if (n !== -1 && !(Number.isInteger(n) && n >= 1)) {
    throw new UsageError(`-n must be -1 (until Ctrl-C) or at least 1 ${what}, not ${value}`);
  }
  return n;
}

/** An integer option that must be at least `min`. */
export function atLeast(value: unknown, min: number, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`${flag} must be an integer of at least ${min}, not ${value}`);
  }
  return n;
}

/** A number of seconds or milliseconds that must be above zero (or zero when `zero`). */
export function positive(value: unknown, flag: string, zero = false): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || (n === 0 && !zero)) {
    throw new UsageError(
      `${flag} must be a number ${zero ? "of at least 0" : "above 0"}, not ${value}`,
    );
  }
  return n;
}

/** The --strict option every command with a --condition has. */
export const STRICT_OPTION = {
  flags: "--strict",
  description: "run none of the target's code in the condition: only builtin values " +
    "(str, bytes, int, float, None, list, tuple, dict, set...) may be compared, converted or " +
    "searched, no property getter or __eq__/__str__/__len__... of the target's classes runs; " +
    "anything else is a counted condition error",
};
