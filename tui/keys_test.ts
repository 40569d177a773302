// Unit test of the TUI's field editing: a paste arrives as one chunk that may hold the text, its
// Enter and more keys; tests/tui.test.ts pastes into the real TUI.
import { deepStrictEqual } from "node:assert";
import { chunkOf, KeyQueue, typeInto } from "./keys.ts";

const NO_KEY = { return: false, backspace: false, delete: false };

Deno.test("typeInto: the text before a line end is typed, the line end submits, the rest follows", () => {
  deepStrictEqual(typeInto("", "shop.add\r"), { value: "shop.add", submitted: true, rest: "" });
  deepStrictEqual(typeInto("sh", "op.add\rwx"), { value: "shop.add", submitted: true, rest: "wx" });
  deepStrictEqual(typeInto("", "a\nb\r"), { value: "a", submitted: true, rest: "b\r" });
  deepStrictEqual(typeInto("", "a\r\nb"), { value: "a", submitted: true, rest: "b" });
  deepStrictEqual(typeInto("ab", "\r"), { value: "ab", submitted: true, rest: "" });
});

Deno.test("typeInto: typing, deleting and control characters without a line end", () => {
  deepStrictEqual(typeInto("sho", "p"), { value: "shop", submitted: false, rest: "" });
  deepStrictEqual(typeInto("shop", "x\x7f\x7f.a\bad"), {
    value: "sho.ad",
    submitted: false,
    rest: "",
  });
  deepStrictEqual(typeInto("", "\x7f\tä€😀\x01"), { value: "ä€😀", submitted: false, rest: "" });
  deepStrictEqual(typeInto("x😀", "\x7f"), { value: "x", submitted: false, rest: "" });
});

Deno.test("chunkOf: Enter and Backspace come as flags, the rest as text", () => {
  deepStrictEqual(chunkOf("", { ...NO_KEY, return: true }), "\r");
  deepStrictEqual(chunkOf("", { ...NO_KEY, backspace: true }), "\x7f");
  deepStrictEqual(chunkOf("", { ...NO_KEY, delete: true }), "\x7f");
  deepStrictEqual(chunkOf("shop.add\r", NO_KEY), "shop.add\r");
});

Deno.test("KeyQueue: one key per two commits, in order, none when empty", () => {
  const queue = new KeyQueue();
  deepStrictEqual([queue.next(), queue.pending], [null, false]);
  queue.push("w😀");
  queue.push("\r");
  const commits: (string | null)[] = [];
  while (queue.pending) commits.push(queue.next());
  deepStrictEqual(commits, [null, "w", null, "😀", null, "\r"]);
  deepStrictEqual(queue.next(), null);
});
