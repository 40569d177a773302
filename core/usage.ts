// What the instrumenting commands (watch, stack, monitor, trace) share on the command line: the
// pattern argument, the -n / --condition / --strict / --rate option specs and the request fields
// they make, and the checks of the numbers they take: a value that makes no sense is a usage
// error (exit 2, code USAGE) before anything is sent to the target.
import { type ArgumentSpec, type Options, type OptionSpec, UsageError } from "./command.ts";

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

/** The function pattern every instrumenting command takes first. */
export const PATTERN_ARGUMENT: ArgumentSpec = {
  name: "pattern",
  description: "module.func, module.Class.method or module.Class.*",
  required: true,
};

/** -n: how many `plural` (observations, cycles...) before the command stops. */
export function timesOption(plural: string): OptionSpec {
  return {
    flags: "-n, --times <n>",
    description: `stop after n ${plural} (-1: until Ctrl-C)`,
    type: "int",
    default: -1,
  };
}

/** --condition, described for the command (what it filters, what cost means there). */
export function conditionOption(description = "only calls where this is true"): OptionSpec {
  return { flags: "--condition <expr>", description };
}

/** --rate: at most n `plural` per second. */
export function rateOption(plural: string, rate: number): OptionSpec {
  return {
    flags: "--rate <n>",
    description: `at most n ${plural} per second (0: no limit)`,
    type: "int",
    default: rate,
  };
}

/** The request fields of the pattern, -n (checked, `singular` names one unit in its error),
 * --condition and --strict, which the agent's observe library reads. */
export function observedRequest(opts: Options, args: string[], singular: string) {
  return {
    pattern: args[0],
    times: times(opts.times, singular),
    condition: opts.condition ?? null,
    strict: Boolean(opts.strict),
  };
}

/** The request field of --rate, checked. */
export function rateRequest(opts: Options): number {
  return atLeast(opts.rate, 0, "--rate");
}
