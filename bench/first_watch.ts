// A watch's first use on a fresh agent: how many requests the CLI sends, from connecting
// to the first observation (each is one round trip: the CLI waits for its answer). Counted
// on the wire, between the real CLI and the real agent: the agent's socket is renamed for
// the measurement and a counting relay listens under its name.
import {
  cli,
  cliEnv,
  type Python,
  REPO,
  sleep,
  StreamingCli,
  Target,
} from "../tests/helpers/env.ts";

/** Length-prefixed frames read from one direction of a connection, as they complete. */
class FrameReader {
  private buffer = new Uint8Array(0);

  push(chunk: Uint8Array): Uint8Array[] {
    const merged = new Uint8Array(this.buffer.length + chunk.length);
    merged.set(this.buffer);
    merged.set(chunk, this.buffer.length);
    this.buffer = merged;
    const frames: Uint8Array[] = [];
    while (this.buffer.length >= 4) {
      const len = new DataView(this.buffer.buffer, this.buffer.byteOffset).getUint32(0);
      if (this.buffer.length < 4 + len) break;
      frames.push(this.buffer.slice(4, 4 + len));
      this.buffer = this.buffer.slice(4 + len);
    }
    return frames;
  }
}

/** Relays one connection from `path` to the agent at `agentPath`, counting the CLI's requests
 * until the agent sends the first observation. */
class CountingRelay {
  requests = 0;
  /** The number of requests sent before the first observation came back, once it came. */
  beforeFirstObservation: number | null = null;
  private listener: Deno.Listener;
  private conns: Deno.Conn[] = [];
  readonly done: Promise<void>;

  constructor(path: string, private agentPath: string) {
    this.listener = Deno.listen({ transport: "unix", path });
    this.done = this.serve().catch(() => {}); // closed before any connection came
  }

  private async serve(): Promise<void> {
    const client = await this.listener.accept();
    const agent = await Deno.connect({ transport: "unix", path: this.agentPath });
    this.conns.push(client, agent);
    await Promise.all([
      this.pipe(client, agent, () => this.requests++),
      this.pipe(agent, client, (body) => this.noticeObservation(body)),
    ]);
  }

  private noticeObservation(body: Uint8Array): void {
    if (this.beforeFirstObservation !== null) return;
    const frame = JSON.parse(new TextDecoder().decode(body));
    // Observations travel in batches: {type: "batch", items: [{type: "observation", ...}]}.
    const items = frame.type === "batch" ? frame.items : [frame];
    if (items.some((o: { type?: string }) => o.type === "observation")) {
      this.beforeFirstObservation = this.requests;
    }
  }

  private async pipe(from: Deno.Conn, to: Deno.Conn, onFrame: (body: Uint8Array) => void) {
    const frames = new FrameReader();
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (let n = await from.read(chunk); n !== null; n = await from.read(chunk)) {
        frames.push(chunk.subarray(0, n)).forEach(onFrame);
        await to.write(chunk.slice(0, n));
      }
    } catch { /* the other side closed */ }
    this.closeAll();
  }

  private closeAll(): void {
    for (const c of this.conns.splice(0)) {
      try {
        c.close();
      } catch { /* closed */ }
    }
  }

  close(): void {
    this.closeAll();
    try {
      this.listener.close();
    } catch { /* closed */ }
  }
}

/** Round trips of `peeka watch benchmod.small` on a fresh agent before its first observation. */
export async function firstWatchRoundTrips(py: Python): Promise<number> {
  const t = await Target.start(py, "", { script: `${REPO}/tests/targets/bench_target.py` });
  const env = cliEnv();
  try {
    const a = await cli(["attach", String(t.pid), "--json"], env);
    const ok = a.lines.find((l) => l.type === "success") as { data: { socket: string } };
    if (a.code !== 0 || !ok) throw new Error(`attach failed on ${py.version}: ${a.stderr}`);
    const socket = ok.data.socket, moved = `${socket}.measured`;
    Deno.renameSync(socket, moved);
    const relay = new CountingRelay(socket, moved);
    try {
      const w = new StreamingCli(["watch", "benchmod.small", "--pid", String(t.pid)], env);
      while (relay.beforeFirstObservation === null && w.lines.every((l) => l.type !== "error")) {
        await t.ask("time 1000");
        await sleep(10);
      }
      w.kill("SIGINT");
      await w.done;
      relay.close(); // ends the relay even if the CLI never connected
      await relay.done;
      if (relay.beforeFirstObservation === null) throw new Error(JSON.stringify(w.lines));
      return relay.beforeFirstObservation;
    } finally {
      relay.close(); // which removes the relay's socket
      Deno.renameSync(moved, socket);
      await cli(["detach", "--pid", String(t.pid), "--json"], env);
    }
  } finally {
    await t.stop();
  }
}
