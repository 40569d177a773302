// Unit test: the request watch sends, built from the options as the CLI parses them (no agent).
import { deepStrictEqual, throws } from "node:assert";
import watch from "./command.ts";
import { type Options, UsageError } from "../../core/command.ts";

/** The options the CLI hands the command when none is given: the defaults of its option specs. */
const DEFAULTS: Options = Object.fromEntries(
  (watch.options ?? []).filter((o) => o.default !== undefined).map((o) => [
    /--([a-z]+)/.exec(o.flags)![1],
    o.default,
  ]),
);

const request = (opts: Options, pattern = "shop.Cart.add") =>
  watch.request!({ ...DEFAULTS, ...opts }, [pattern]);

Deno.test("watch request: defaults", () => {
  deepStrictEqual(request({}), {
    pattern: "shop.Cart.add",
    depth: 2,
    times: -1,
    condition: null,
    strict: false,
    before: false,
    success: false,
    exception: false,
    finish: false,
    rate: 1000,
  });
});

Deno.test("watch request: every option reaches its field", () => {
  const given = {
    depth: 0,
    times: 5,
    condition: "params[0] > 1",
    strict: true,
    before: true,
    success: true,
    exception: true,
    finish: true,
    rate: 0,
  };
  deepStrictEqual(request(given, "shop.*"), { pattern: "shop.*", ...given });
});

Deno.test("watch request: numbers that make no sense are usage errors, before any connection", () => {
  for (const opts of [{ depth: -1 }, { times: 0 }, { times: -2 }, { rate: -1 }, { rate: 1.5 }]) {
    throws(() => request(opts), UsageError, JSON.stringify(opts));
  }
});
