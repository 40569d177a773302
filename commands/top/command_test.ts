// Unit test: top's duration parser ("10ms", "5s", a bare number in the option's unit).
import { strictEqual, throws } from "node:assert";
import { parseDuration } from "./command.ts";
import { UsageError } from "../../core/command.ts";

Deno.test("parseDuration: units convert into the one asked for", () => {
  strictEqual(parseDuration("10ms", "ms"), 10);
  strictEqual(parseDuration("2s", "ms"), 2000);
  strictEqual(parseDuration("1.5s", "s"), 1.5);
  strictEqual(parseDuration("2m", "s"), 120);
  strictEqual(parseDuration("250ms", "s"), 0.25);
});

Deno.test("parseDuration: a bare number is in the option's own unit", () => {
  strictEqual(parseDuration("10", "ms"), 10);
  strictEqual(parseDuration(3, "s"), 3);
  strictEqual(parseDuration(" 0.5 ", "s"), 0.5);
});

Deno.test("parseDuration: anything else is a usage error that shows the syntax", () => {
  for (const bad of ["", "fast", "-1s", "10 ms", "1e3", "5h", "ms", undefined]) {
    throws(() => parseDuration(bad, "ms"), (e: unknown) => {
      return e instanceof UsageError && /not a duration: .*\(e\.g\. 10ms, 5s\)/.test(e.message);
    }, String(bad));
  }
});
