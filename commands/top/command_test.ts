// Unit tests: top's duration parser ("10ms", "5s", a bare number in the option's unit) and
// the head of its table.
import { strictEqual, throws } from "node:assert";
import { parseDuration, renderTable } from "./command.ts";
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

Deno.test("renderTable: the head says how many samples were asked and taken", () => {
  const o = { thread_samples: 7, seconds: 1, idle_skipped: 2, sampling_cpu_ms: 0, functions: [] };
  const head = (extra: Record<string, unknown>) => renderTable({ ...o, ...extra }).split("\n")[0];
  strictEqual(
    head({ final: true, samples_asked: 10, samples_taken: 9 }),
    "final: 7 samples over 1s (2 idle skipped, 9 of 10 samples taken, sampling cost 0 ms CPU)",
  );
  // The agent's sampler does not count them: nothing is claimed.
  strictEqual(head({}), "top: 7 samples over 1s (2 idle skipped, sampling cost 0 ms CPU)");
});

Deno.test("renderTable: with no agent the head says the stacks were read from outside", () => {
  const o = { thread_samples: 7, seconds: 1, idle_skipped: 0, functions: [], agent: false };
  strictEqual(
    renderTable({ ...o, samples_asked: 10, samples_taken: 10, sampling_cpu_ms: 0 }).split("\n")[0],
    "top: 7 samples over 1s (0 idle skipped, 10 of 10 samples taken, read from outside, no agent)",
  );
});
