// Unit test of the client's framing: encodeFrame's bytes, and frames read back through a real
// Unix socket pair made in this process, the byte stream cut at random points (the seed is in
// the test's name, so a failure replays with PEEKA_FRAME_SEED).
import { deepStrictEqual, rejects, strictEqual } from "node:assert";
import { AgentClient, AgentGoneError, encodeFrame, type Frame } from "./protocol.ts";

const SEED = Number(Deno.env.get("PEEKA_FRAME_SEED") ?? Date.now() % 1_000_000);

/** A small seeded generator (mulberry32): the same seed cuts the stream the same way. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A client connected to a listener of ours; `serve` writes to the client's peer. */
async function socketPair(serve: (peer: Deno.Conn) => Promise<void>) {
  const dir = Deno.makeTempDirSync({ prefix: "peeka-frames-" });
  const listener = Deno.listen({ transport: "unix", path: `${dir}/agent.sock` });
  const accepted = listener.accept();
  const client = await AgentClient.connect(`${dir}/agent.sock`);
  const peer = await accepted;
  const served = serve(peer).finally(() => peer.close());
  const cleanup = async () => {
    await served.catch(() => {});
    client.close();
    listener.close();
    Deno.removeSync(dir, { recursive: true });
  };
  return { client, served, cleanup };
}

/** Writes `bytes` in pieces cut at random points, each in its own write, a moment apart. */
async function writeInPieces(peer: Deno.Conn, bytes: Uint8Array, next: () => number) {
  for (let at = 0; at < bytes.length;) {
    const size = Math.max(1, Math.floor(next() * Math.min(bytes.length - at, 70_000)));
    const piece = bytes.subarray(at, at + size);
    for (let done = 0; done < piece.length;) done += await peer.write(piece.subarray(done));
    at += size;
    if (next() < 0.3) await new Promise((r) => setTimeout(r, 1));
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

/** Frames of every size that matters: empty, tiny, non-ASCII, and larger than one read. */
function sampleFrames(next: () => number): Frame[] {
  return Array.from({ length: 60 }, (_, i) => {
    const text = "é€𝄞x".repeat(Math.floor(next() * (i % 10 === 0 ? 40_000 : 50)));
    return { id: i, type: i % 2 ? "event" : "result", data: { text, n: next(), list: [i, null] } };
  });
}

Deno.test("encodeFrame: a 4-byte big-endian length of the UTF-8 JSON, then the JSON", () => {
  const frame = encodeFrame({ op: "hello", name: "é" });
  const body = new TextEncoder().encode('{"op":"hello","name":"é"}');
  strictEqual(new DataView(frame.buffer).getUint32(0, false), body.length);
  deepStrictEqual(frame.subarray(4), body);
  deepStrictEqual([...encodeFrame({}).subarray(0, 4)], [0, 0, 0, 2]);
});

Deno.test(`frames read back whole and in order, the stream cut at random points (seed ${SEED})`, async () => {
  const next = random(SEED);
  const frames = sampleFrames(next);
  const { client, served, cleanup } = await socketPair((peer) =>
    writeInPieces(peer, concat(frames.map(encodeFrame)), next)
  );
  try {
    for (const expected of frames) deepStrictEqual(await client.readFrame(), expected);
    await served;
  } finally {
    await cleanup();
  }
});

Deno.test("a connection that closes mid-frame ends the read with AgentGoneError", async () => {
  const whole = encodeFrame({ id: 1, type: "result", data: "cut short" });
  const { client, cleanup } = await socketPair(async (peer) => {
    await peer.write(whole.subarray(0, whole.length - 3));
  });
  try {
    await rejects(client.readFrame(), AgentGoneError);
  } finally {
    await cleanup();
  }
});

Deno.test("a length over the limit is refused before anything is read for it", async () => {
  const { client, cleanup } = await socketPair(async (peer) => {
    await peer.write(new Uint8Array([0x7f, 0xff, 0xff, 0xff, 0x7b]));
  });
  try {
    await rejects(client.readFrame(), (e: unknown) => {
      return e instanceof AgentGoneError && /oversized frame/.test(e.message);
    });
  } finally {
    await cleanup();
  }
});
