// `peeka demo` for real on one interpreter: every step's own output appears in order (a watch
// with its condition, a trace down to the slow child, reset ending a running watch, detach),
// and nothing is left behind — also when the demo is interrupted (Ctrl-C) or killed.
import { assert, assertEquals } from "./helpers/assert.ts";
import { cliEnv, pythons, sessionDirOf, StreamingCli, waitUntil } from "./helpers/env.ts";
import { startTime } from "../process/procfs.ts";
import { existsSync } from "node:fs";

const py = pythons().find((p) => p.version === "3.12") ?? pythons()[0];

type Line = Record<string, unknown>;
interface TreeNode {
  function: string;
  total_ms: number;
  slowest: boolean;
  children: TreeNode[];
}

/** `peeka demo` finds python3 on PATH; --python only where the interpreter's folder has none. */
function pythonArgs(env: Record<string, string>): string[] {
  const bin = py.path.slice(0, py.path.lastIndexOf("/"));
  if (!existsSync(`${bin}/python3`)) return ["--python", py.path];
  env.PATH = bin;
  return [];
}

/** Runs the demo as a user would (with the interpreter under test serving the shop) and hands
 * it to `body` with its service's pid; whatever happens, neither is left running. */
async function withDemo(
  env: Record<string, string>,
  body: (c: StreamingCli, pid: number) => Promise<void>,
): Promise<void> {
  const c = new StreamingCli(["demo", ...pythonArgs(env)], env);
  let pid = 0;
  try {
    const started = await c.waitFor((l) => String(l.message ?? "").startsWith("Started"), 20000);
    pid = started.pid as number;
    await body(c, pid);
  } finally {
    c.kill("SIGKILL");
    if (pid && !gone(pid)) Deno.kill(pid, "SIGKILL"); // a service left behind fails the test, later
    await c.done;
  }
}

function gone(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] === "Z"; // not reaped yet: it has exited
  } catch {
    return true;
  }
}

/** What every end of the demo leaves: no service process, no agent files, no service folder. */
async function nothingLeft(pid: number, folder?: string): Promise<void> {
  await waitUntil(() => gone(pid), 5000, `the demo service ${pid} ended`);
  assertEquals(sessionDirOf(pid), null, "no agent files remain");
  if (folder) assert(!existsSync(folder), `${folder} was removed`);
}

/** The service's folder, named in the demo's first line. */
const folderOf = (lines: Line[]) => lines[0].folder as string;
const steps = (lines: Line[]) => lines.filter((l) => l.command === "demo" && l.step);
const ofWatch = (lines: Line[], id: unknown) => lines.filter((l) => l.watch_id === id);
const startedOf = (lines: Line[], pattern: string) =>
  lines.find((l) => String(l.event).endsWith("_started") && (l.data as Line).pattern === pattern)!
    .data as Line;

Deno.test(`demo (Python ${py.version}): attach, watch --condition, trace, reset, detach; nothing left`, async () => {
  const env = cliEnv();
  // A session the user had remembered (this test process stands for it) is theirs again after.
  const remembered = { pid: Deno.pid, start: startTime(Deno.pid) };
  Deno.writeTextFileSync(`${env.PEEKA_STATE_DIR}/session.json`, JSON.stringify(remembered));
  let pid = 0;
  let code = -1;
  let lines: Line[] = [];
  let stderr = "";
  await withDemo(env, async (c, service) => {
    pid = service;
    code = await c.done;
    [lines, stderr] = [c.lines, c.stderr];
  });
  assertEquals(code, 0, stderr);
  assertEquals(
    steps(lines).map((l) => `${l.message}`),
    [
      `$ peeka attach ${pid}`,
      `$ peeka watch shop.OrderBook.add --condition 'qty * price > 25' -n 3 --pid ${pid}`,
      `$ peeka trace shop.handle_request -n 1 --pid ${pid}`,
      `$ peeka watch shop.quote_shipping --pid ${pid}`,
      `$ peeka reset shop.quote_shipping --pid ${pid}`,
      `$ peeka detach ${pid}`,
    ],
  );
  const attached = lines.find((l) => l.type === "success" && l.command === "attach")!;
  assertEquals((attached.data as Line).pid, pid);

  // The watch: three calls, each one that passed its condition (qty * price > 25).
  const watch = startedOf(lines, "shop.OrderBook.add");
  const calls = ofWatch(lines, watch.watch_id).filter((l) => l.type === "observation");
  assertEquals(calls.length, 3);
  for (const o of calls) {
    const [, qty, price] = o.args as [string, number, number];
    assert(qty * price > 25, JSON.stringify(o.args));
  }

  // The trace: one request, its time in the slow child (which sleeps 30 ms).
  const trace = startedOf(lines, "shop.handle_request");
  const [request] = ofWatch(lines, trace.watch_id).filter((l) => l.type === "observation");
  assertEquals(request.func_name, "shop.handle_request");
  const checkout = (request.call_tree as TreeNode[]).find((n) => n.function === "shop.checkout")!;
  const slow = checkout.children.find((n) => n.function === "shop.quote_shipping")!;
  assert(slow.slowest && slow.total_ms >= 30, JSON.stringify(slow));

  // Reset takes out the watch left running: its stream ends (reason "stopped").
  const running = startedOf(lines, "shop.quote_shipping");
  const reset = lines.find((l) => l.type === "result" && l.command === "reset")!.data as Line;
  assertEquals((reset.affected as Line[]).map((e) => e.watch_id), [running.watch_id]);
  const stopped = lines.find((l) =>
    l.event === "watch_stopped" && (l.data as Line).watch_id === running.watch_id
  )!;
  assertEquals((stopped.data as Line).reason, "stopped");

  assert(lines.some((l) => l.type === "success" && l.command === "detach"), stderr);
  assertEquals(lines.at(-1)!.message, "Stopped the demo service");
  assertEquals(String(request.file), `${folderOf(lines)}/shop.py`);
  await nothingLeft(pid, folderOf(lines));
  const after = JSON.parse(Deno.readTextFileSync(`${env.PEEKA_STATE_DIR}/session.json`));
  assertEquals(after, remembered, "the remembered session is the user's again");
});

Deno.test(`demo (Python ${py.version}): Ctrl-C detaches and stops the service`, async () => {
  await withDemo(cliEnv(), async (c, pid) => {
    // While the first watch streams (~0.3 s until its third call): Ctrl-C stops that step and
    // the demo, which detaches and stops its service.
    await c.waitFor((l) => l.event === "watch_started");
    await interruptedAndCleaned(c, pid);
  });
});

Deno.test(`demo (Python ${py.version}): Ctrl-C during attach also detaches and stops the service`, async () => {
  await withDemo(cliEnv(), async (c, pid) => {
    // a step with nothing to cancel (attach) hands the Ctrl-C to the demo, which cleans up
    await c.waitFor((l) => l.step === "attach");
    await interruptedAndCleaned(c, pid);
  });
});

async function interruptedAndCleaned(c: StreamingCli, pid: number): Promise<void> {
  c.kill("SIGINT");
  assertEquals(await c.done, 130, c.stderr);
  const cleanup = steps(c.lines).at(-1)!;
  assertEquals([cleanup.message, cleanup.note], [`$ peeka detach ${pid}`, "cleaning up"]);
  assert(c.lines.some((l) => l.type === "success" && l.command === "detach"), c.stderr);
  await nothingLeft(pid, folderOf(c.lines));
}

Deno.test(`demo (Python ${py.version}): killed, its service stops by itself`, async () => {
  await withDemo(cliEnv(), async (c, pid) => {
    await c.waitFor((l) => l.step === "trace");
    c.kill("SIGKILL");
    // Its stdin closed: it exits through atexit, where the agent removes its files and the
    // service its folder.
    await nothingLeft(pid, folderOf(c.lines));
  });
});
