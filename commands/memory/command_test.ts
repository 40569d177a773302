// Unit tests: memory's command line (durations, one action at a time, a bare --trace only with
// --growth) and its rendering of a growth with nothing grown.
import { deepStrictEqual, strictEqual, throws } from "node:assert";
import memory, { durationSeconds } from "./command.ts";
import { UsageError } from "../../core/command.ts";

const request = (opts: Record<string, unknown>) =>
  memory.request!({ limit: 20, nframe: 1, ...opts }, []);

Deno.test("durationSeconds: 2s, 500ms, 1m, a bare number of seconds; nonsense refused", () => {
  deepStrictEqual(["2s", "500ms", "1m", "1.5"].map((d) => durationSeconds(d, "--growth")), [
    2,
    0.5,
    60,
    1.5,
  ]);
  for (const bad of ["0s", "2x", "", "-1s", "2h"]) {
    throws(() => durationSeconds(bad, "--growth"), UsageError, bad);
  }
});

Deno.test("request: one action at a time; a bare --trace goes with --growth only", () => {
  const growth = request({ growth: "2s", trace: true });
  deepStrictEqual([growth.growth, growth.trace, growth.reclaim], [2, true, false]);
  strictEqual(request({ gc: true, mallocTrim: true, summary: true }).reclaim, true);
  strictEqual(request({ trace: 3 }).trace, 3);
  for (
    const opts of [
      { trace: true },
      { summary: true },
      { byModule: true, gc: true },
      { growth: "1s", trace: 2 },
      { growth: "1s", byModule: true },
    ]
  ) {
    throws(() => request(opts), UsageError, JSON.stringify(opts));
  }
});

Deno.test("render: a growth with nothing grown says so", () => {
  const text = memory.render!({
    action: "growth",
    seconds: 1,
    before: { objects: 10, bytes: 100 },
    after: { objects: 10, bytes: 100 },
    walk_ms: [1, 1],
    gil_ms: 2,
    gil_max_ms: 1,
    gil_releases: 2,
    total_ms: 1002,
    grew: [],
    shrank: [],
    counted: "counted: …",
  }, {});
  strictEqual(text.includes("(nothing grew)"), true, text);
});
