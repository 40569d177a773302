// Unit test: the requests tt sends, built from the options as the CLI parses them (no agent).
import { deepStrictEqual, throws } from "node:assert";
import tt, { parseBytes } from "./command.ts";
import { type Options, UsageError } from "../../core/command.ts";

const DEFAULTS: Options = { times: -1, rate: 1000, maxRecords: 100, maxBytes: "2m" };
const request = (opts: Options, args: string[] = []) => tt.request!({ ...DEFAULTS, ...opts }, args);

Deno.test("tt request: recording with the defaults", () => {
  deepStrictEqual(request({}, ["shop.pay"]), {
    mode: "record",
    pattern: "shop.pay",
    times: -1,
    condition: null,
    strict: false,
    depth: 2,
    rate: 1000,
    max_records: 100,
    max_bytes: 2 << 20,
    keep_objects: false,
  });
});

Deno.test("tt request: one thing at a time; replay's flag only with --replay", () => {
  deepStrictEqual(request({ list: true }), { mode: "list" });
  deepStrictEqual(request({ show: 1003, depth: 4 }), { mode: "show", index: 1003, depth: 4 });
  deepStrictEqual(request({ replay: 1003, confirmSideEffects: true }), {
    mode: "replay",
    index: 1003,
    depth: null,
    confirm: true,
  });
  throws(() => request({}), UsageError);
  throws(() => request({ list: true, clear: true }), UsageError);
  throws(() => request({ list: true }, ["shop.pay"]), UsageError);
  throws(() => request({ list: true, confirmSideEffects: true }), UsageError);
});

Deno.test("tt --max-bytes: bytes, or k/m/g", () => {
  deepStrictEqual([parseBytes("4096"), parseBytes("512k"), parseBytes("4m"), parseBytes("1GiB")], [
    4096,
    512 << 10,
    4 << 20,
    1 << 30,
  ]);
  for (const bad of ["12", "-1m", "lots", "4t"]) throws(() => parseBytes(bad), UsageError);
});
