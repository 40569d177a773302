// `peeka tasks` against real targets on every interpreter: a stdlib asyncio server with two
// loops (main thread and another), 10 000 pending tasks, a process without asyncio, uvicorn +
// Starlette with requests in flight, and a gevent process with greenlets.
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, type Python, pythons, REPO, sleep, Target } from "./helpers/env.ts";
import { FRAMEWORK_TARGETS, frameworkPython } from "./helpers/frameworks.ts";

const ASYNCIO = `${REPO}/tests/targets/asyncio_target.py`;
type Row = Record<string, unknown>;
interface Listing {
  tasks: Row[];
  summary: Row;
}

async function tasks(pid: number, env: Record<string, string>, extra: string[] = []) {
  const r = await cli(["tasks", "--pid", String(pid), "--json", ...extra], env);
  assertEquals(r.code, 0, r.stderr + r.stdout.slice(-500));
  const last = r.lines[r.lines.length - 1];
  assertEquals(last.type, "result", JSON.stringify(last));
  const rows = r.lines.slice(0, -1);
  assert(rows.every((l) => l.type === "task"), JSON.stringify(rows.slice(0, 2)));
  return { tasks: rows.map((l) => l.data as Row), summary: last.data as Row } as Listing;
}

async function attach(pid: number, env: Record<string, string>) {
  const r = await cli(["attach", String(pid), "--json"], env);
  assertEquals(r.code, 0, r.stderr);
}

const functions = (t: Row) => (t.stack as Row[]).map((f) => f.function);
const byName = (l: Listing, name: string) => {
  const found = l.tasks.find((t) => t.name === name);
  assert(found, `no task ${name} in ${l.tasks.map((t) => t.name).join(", ")}`);
  return found;
};
const squares = (n: number) => Array.from({ length: n }, (_, i) => i * i % 97);

async function checkAsyncio(py: Python, t: Target, env: Record<string, string>) {
  const minor = Number(py.version.split(".")[1]);
  const before = await t.ask("report");
  const l = await tasks(t.pid, env, ["--tree"]);
  const chain = byName(l, "req-chain");
  assertEquals(chain.coro, "__main__.handle_chain");
  assertEquals(chain.state, "pending");
  assertEquals(functions(chain).slice(-3), ["handle_chain", "fetch_rate", "sleep"]);
  const sleeping = chain.awaiting as Row;
  assertEquals(sleeping.kind, "sleep");
  assert(Number(sleeping.remaining_s) > 0 && Number(sleeping.remaining_s) <= 600, String(sleeping));
  const agen = byName(l, "req-agen");
  assertEquals(functions(agen).slice(-3), ["consume_ticks", "ticker", "sleep"]);
  assertEquals((agen.stack as Row[]).at(-2)!.kind, "async_generator");
  assertEquals((byName(l, "req-future").awaiting as Row).kind, "future");
  const gather = byName(l, "req-gather");
  assertEquals((gather.awaiting as Row).kind, "gather");
  for (const child of ["gather-child-1", "gather-child-2"]) {
    assertEquals(byName(l, child).parent, gather.id, child);
  }
  if (minor >= 11) {
    const group = byName(l, "req-group");
    assertEquals((group.awaiting as Row).kind, "taskgroup");
    assertEquals(byName(l, "group-child-1").parent, group.id);
    assertEquals(byName(l, "req-stubborn").state, "cancelling");
  }
  if (minor < 14) assertEquals(byName(l, "req-done").state, "done"); // 3.14 lists pending ones
  const side = byName(l, "side-chain");
  assert(side.loop !== chain.loop, "two loops");
  const loops = l.summary.loops as Row[];
  assertEquals(loops.map((x) => x.thread_name).sort(), ["MainThread", "side-loop"]);
  assert(loops.every((x) => x.type === "asyncio" && x.running === true));
  // The target went on as before: its results, and the same tasks pending.
  const after = await t.ask("report");
  const results = after.results as number[];
  assert(results.length > (before.results as number[]).length, "the worker kept working");
  assertEquals(results, squares(results.length));
  assertEquals([after.main, after.side], [before.main, before.side]);
}

async function checkThreadMarks(t: Target, env: Record<string, string>) {
  const r = await cli(["thread", "--pid", String(t.pid), "--json"], env);
  assertEquals(r.code, 0, r.stderr);
  const threads = (r.lines[0].data as Row).threads as Row[];
  const marks = Object.fromEntries(threads.map((x) => [x.name, x.event_loop as Row | undefined]));
  assertEquals(marks["control"], undefined);
  assertEquals([marks["MainThread"]?.type, marks["side-loop"]?.type], ["asyncio", "asyncio"]);
  assert(Number(marks["MainThread"]?.tasks) >= 8, JSON.stringify(marks));
  assert(Number(marks["side-loop"]?.tasks) >= 1, JSON.stringify(marks));
}

async function checkMany(t: Target, env: Record<string, string>) {
  await t.ask("many 10000");
  const l = await tasks(t.pid, env, ["-x", "3"]);
  const idle = l.tasks.filter((x) => String(x.name).startsWith("idle-"));
  assertEquals(idle.length, 10000);
  assert(idle.every((x) => x.state === "pending" && (x.awaiting as Row).kind === "sleep"));
  assert(
    Number(l.summary.gil_ms) > 0 && Number(l.summary.total_ms) >= Number(l.summary.gil_max_ms),
  );
  assertEquals(l.summary.dropped, 0);
}

async function checkNoAsyncio(t: Target, env: Record<string, string>) {
  for (let i = 0; i < 2; i++) { // the second look would see what the first imported
    const l = await tasks(t.pid, env);
    assertEquals([l.tasks.length, l.summary.asyncio, l.summary.count], [0, false, 0]);
    assert(/no asyncio in this process/.test(String(l.summary.message)));
  }
  const sc = await cli(["sc", "asyncio.*", "--pid", String(t.pid), "--json"], env);
  assertEquals((sc.lines[0].data as Row).count, 0, "asyncio was never imported");
}

async function checkAsgi(t: Target, env: Record<string, string>) {
  const curs = ["EUR1", "USD22", "GBP333", "JPY4444"];
  const replies = curs.map((c) =>
    fetch(`http://127.0.0.1:${t.port}/rate/${c}`).then((r) => r.json())
  );
  try {
    await sleep(400);
    const l = await tasks(t.pid, env, ["-x", "60"]);
    const requests = l.tasks.filter((x) => functions(x).includes("rate_endpoint"));
    assertEquals(requests.length, curs.length, JSON.stringify(l.tasks.map((x) => x.coro)));
    for (const r of requests) {
      assertEquals(functions(r).slice(-3), ["rate_endpoint", "fetch_rate", "sleep"]);
      assertEquals((r.awaiting as Row).kind, "sleep");
    }
  } finally {
    const got = await Promise.all(replies);
    assertEquals(got, curs.map((cur) => ({ cur, rate: cur.length * 1.5 })));
  }
}

async function checkGevent(t: Target, env: Record<string, string>) {
  const l = await tasks(t.pid, env);
  const state = (name: string) => byName(l, name).state;
  assertEquals(
    ["sleeper", "waiter", "later", "main", "hub"].map(state),
    ["blocked", "blocked", "ready", "blocked", "running"],
  );
  assert(l.tasks.every((x) => x.kind === "greenlet"));
  assert(functions(byName(l, "sleeper")).includes("sleeper"));
  assert(functions(byName(l, "main")).includes("main"));
  assertEquals(byName(l, "counter").coro, "__main__.counter");
  const results = (await t.ask("report")).results as number[];
  assert(results.length > 0);
  assertEquals(results, squares(results.length));
}

for (const py of pythons()) {
  Deno.test(`${py.version}: tasks: asyncio loops on two threads, 10 000 tasks, ASGI, gevent`, async (t) => {
    const fw = frameworkPython(py);
    const env = cliEnv();
    const targets: Target[] = [];
    const start = async (
      python: Python,
      shape: string,
      opts: Parameters<typeof Target.start>[2],
    ) => {
      const target = await Target.start(python, shape, opts);
      targets.push(target);
      await attach(target.pid, env);
      return target;
    };
    try {
      const started = await Promise.allSettled([
        start(py, "", { script: ASYNCIO }),
        start(py, "idle", {}),
        start(fw.python, "", {
          script: `${FRAMEWORK_TARGETS}/asgi_app.py`,
          env: { ...fw.env, SLOW: "1.5" },
        }),
        start(fw.python, "", { script: `${FRAMEWORK_TARGETS}/gevent_greenlets.py`, env: fw.env }),
      ]);
      const [aio, plain, asgi, gv] = started.map((s) => {
        if (s.status === "rejected") throw s.reason;
        return s.value;
      });
      await t.step(
        "asyncio: names, chains, states, tree; the target unchanged",
        () => checkAsyncio(py, aio, env),
      );
      await t.step("thread marks the threads that run a loop", () => checkThreadMarks(aio, env));
      await t.step("10 000 pending tasks are all listed", () => checkMany(aio, env));
      await t.step(
        "a process without asyncio: said, and nothing imported",
        () => checkNoAsyncio(plain, env),
      );
      await t.step(
        "uvicorn + Starlette: requests in flight await the endpoint's chain",
        () => checkAsgi(asgi, env),
      );
      await t.step("gevent: greenlets with stacks and states", () => checkGevent(gv, env));
      for (const target of targets) {
        assertEquals(target.errText, "", "nothing on the target's stderr");
      }
    } finally {
      await Promise.all(targets.map((x) => x.stop()));
    }
  });
}
