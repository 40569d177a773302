// How long a call may take before it answers: the usual deadline, plus the work a command is
// asked to do first (declared by the command itself). The deadlines in action, against real
// stopped and GIL-bound targets, are in hang.test.ts.
import { assertEquals } from "./helpers/assert.ts";
import { callTimeoutMs } from "../core/call.ts";
import memory from "../commands/memory/command.ts";
import thread from "../commands/thread/command.ts";
import sc from "../commands/sc/command.ts";

Deno.test("commands that are asked to work for a while get that much more time", () => {
  assertEquals(callTimeoutMs(memory, { trace: 30 }, 10000), 40000);
  // a heap walk (overview, --growth's two, --by-module) gets a margin for a large heap
  assertEquals(callTimeoutMs(memory, { trace: null }, 10000), 30000);
  assertEquals(callTimeoutMs(memory, { growth: 2 }, 10000), 52000);
  assertEquals(callTimeoutMs(memory, { reclaim: true }, 10000), 10000);
  assertEquals(callTimeoutMs(thread, { top: 3, interval: 5000 }, 10000), 15000);
  assertEquals(callTimeoutMs(thread, { interval: 5000 }, 10000), 10000);
  assertEquals(callTimeoutMs(sc, { trace: 30 }, 10000), 10000);
});
