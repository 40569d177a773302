// The client's deadlines against a fake agent that answers only what a test
// tells it to (no Python): a request never answered, a stream that may last
// while it sends, a cancel never answered, a session-ending event.
import { assert, assertEquals } from "./helpers/assert.ts";
import {
  AgentClient,
  AgentTimeoutError,
  encodeFrame,
  type Frame,
  SessionEndedError,
} from "../core/protocol.ts";
import { callTimeoutMs } from "../core/call.ts";
import type { PeekaCommand } from "../core/command.ts";

/** A Unix socket server that records each request and answers with `reply` (nothing when it
 * returns null). Its path looks like a session's, so the client diagnoses this very process. */
class FakeAgent {
  readonly path: string;
  readonly requests: Frame[] = [];
  private listener: Deno.UnixListener;
  private conns: Deno.Conn[] = [];
  private served: Promise<void>;

  constructor(private reply: (req: Frame, send: (f: Frame) => void) => void) {
    const dir = Deno.makeTempDirSync({ prefix: "peeka-fake-" });
    Deno.mkdirSync(`${dir}/${Deno.pid}-1`);
    this.path = `${dir}/${Deno.pid}-1/agent.sock`;
    this.listener = Deno.listen({ transport: "unix", path: this.path });
    this.served = this.serve();
  }

  private async serve(): Promise<void> {
    for await (const conn of this.listener) {
      this.conns.push(conn);
      this.read(conn).catch(() => {});
    }
  }

  private async read(conn: Deno.Conn): Promise<void> {
    let buf = new Uint8Array(0);
    const chunk = new Uint8Array(65536);
    const send = (f: Frame) => conn.write(encodeFrame(f)).catch(() => {});
    for (;;) {
      const n = await conn.read(chunk);
      if (n === null) return;
      const merged = new Uint8Array(buf.length + n);
      merged.set(buf);
      merged.set(chunk.subarray(0, n), buf.length);
      buf = merged;
      while (buf.length >= 4) {
        const len = new DataView(buf.buffer).getUint32(0);
        if (buf.length < 4 + len) break;
        const req = JSON.parse(new TextDecoder().decode(buf.subarray(4, 4 + len)));
        buf = buf.slice(4 + len);
        this.requests.push(req);
        this.reply(req, send);
      }
    }
  }

  /** Closes every connection (as an agent that goes away). */
  hangUp(): void {
    for (const c of this.conns) c.close();
    this.conns = [];
  }

  async close(): Promise<void> {
    this.hangUp();
    this.listener.close();
    await this.served.catch(() => {});
    Deno.removeSync(this.path.slice(0, this.path.lastIndexOf("/", this.path.length - 12)), {
      recursive: true,
    });
  }
}

const SNIPPET = { source: "def run(ctx, args): pass", hash: "h" };

async function connect(agent: FakeAgent, timeoutMs: number): Promise<AgentClient> {
  const client = await AgentClient.connect(agent.path);
  client.timeoutMs = timeoutMs;
  return client;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a failure");
}

Deno.test("a request never answered ends at its deadline and says why", async () => {
  const agent = new FakeAgent(() => {});
  const client = await connect(agent, 300);
  try {
    const e = await rejection(client.request("hello"));
    assert(e instanceof AgentTimeoutError, String(e));
    assert(e.message.includes(`process ${Deno.pid}`), e.message);
    assert(e.message.includes("'hello' within 0.3 s"), e.message);
    assert(e.diagnosis !== null);
  } finally {
    client.close();
    await agent.close();
  }
});

Deno.test("a stream lasts past the deadline once started; its cancel is bounded", async () => {
  // Starts, streams a frame every 50 ms, and never answers a cancel.
  let ticker: ReturnType<typeof setInterval> | undefined;
  const agent = new FakeAgent((req, send) => {
    if (req.op !== "call") return;
    send({ id: req.id, type: "event", event: "x_started" });
    ticker = setInterval(() => send({ id: req.id, type: "observation" }), 50);
  });
  const client = await connect(agent, 300);
  const abort = new AbortController();
  const frames: Frame[] = [];
  try {
    const call = client.call("x", SNIPPET, {}, {
      streaming: true,
      signal: abort.signal,
      onFrame: (f) => frames.push(f),
    });
    const ended = rejection(call).then((e) => ({ e, afterCancel: abort.signal.aborted }));
    await new Promise((r) => setTimeout(r, 900)); // three deadlines
    abort.abort();
    const { e, afterCancel } = await ended;
    assert(afterCancel, `the stream ended before it was cancelled: ${e}`);
    assert(e instanceof AgentTimeoutError, String(e));
    assert(frames.length > 10, `frames kept coming: ${frames.length}`);
    assertEquals(agent.requests.map((r) => r.op), ["call", "cancel"]);
  } finally {
    clearInterval(ticker);
    client.close();
    await agent.close();
  }
});

Deno.test("a non-streaming call must answer within its deadline", async () => {
  const agent = new FakeAgent((req, send) => {
    if (req.op === "call") send({ id: req.id, type: "event", event: "progress" });
  });
  const client = await connect(agent, 300);
  try {
    const e = await rejection(client.call("x", SNIPPET, {}));
    assert(e instanceof AgentTimeoutError, String(e));
    assert(e.message.includes("'x' within 0.3 s"), e.message);
  } finally {
    client.close();
    await agent.close();
  }
});

Deno.test("a stream told the agent was detached ends with that event", async () => {
  const agent = new FakeAgent((req, send) => {
    if (req.op !== "call") return;
    send({ id: req.id, type: "event", event: "watch_started" });
    send({
      id: req.id,
      type: "event",
      event: "agent_detached",
      message: "process 1 was detached by another peeka client (pid 2)",
      by_pid: 2,
    });
    setTimeout(() => agent.hangUp(), 50);
  });
  const client = await connect(agent, 5000);
  const frames: Frame[] = [];
  try {
    const e = await rejection(
      client.call("x", SNIPPET, {}, { streaming: true, onFrame: (f) => frames.push(f) }),
    );
    assert(e instanceof SessionEndedError, String(e));
    assertEquals(e.code, "AGENT_DETACHED");
    assertEquals(frames.map((f) => f.event), ["watch_started", "agent_detached"]);
  } finally {
    client.close();
    await agent.close();
  }
});

Deno.test("commands that are asked to work for a while get that much more time", () => {
  const cmd = (name: string) => ({ name, summary: "" }) as PeekaCommand;
  assertEquals(callTimeoutMs(cmd("memory"), { trace: 30 }, 10000), 40000);
  assertEquals(callTimeoutMs(cmd("memory"), { trace: null }, 10000), 10000);
  assertEquals(callTimeoutMs(cmd("thread"), { top: 3, interval: 5000 }, 10000), 15000);
  assertEquals(callTimeoutMs(cmd("thread"), { interval: 5000 }, 10000), 10000);
  assertEquals(callTimeoutMs(cmd("sc"), { trace: 30 }, 10000), 10000);
});
