// The client side of the wire protocol: 4-byte big-endian length + UTF-8
// JSON object, both ways, over the agent's Unix socket. Requests carry an
// integer id and an op; replies and streamed frames carry the same id.

export const MAX_FRAME = 16 * 1024 * 1024;

export type Frame = Record<string, unknown> & { id?: number; type?: string };

export class AgentGoneError extends Error {
  readonly code = "AGENT_GONE";
}

export class AgentError extends Error {
  constructor(readonly code: string, message: string, readonly frame: Frame) {
    super(message);
  }
}

export function encodeFrame(obj: unknown): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify(obj));
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, false);
  out.set(body, 4);
  return out;
}

/** One connection to an agent. Frames are read in order; each has the id of its request. */
export class AgentClient {
  private nextId = 1;
  private buffer = new Uint8Array(0);

  private constructor(private conn: Deno.UnixConn, readonly socketPath: string) {}

  static async connect(socketPath: string, timeoutMs = 2000): Promise<AgentClient> {
    const conn = await withTimeout(
      Deno.connect({ transport: "unix", path: socketPath }),
      timeoutMs,
      `timed out connecting to ${socketPath}`,
    );
    return new AgentClient(conn, socketPath);
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  async send(op: string, fields: Record<string, unknown> = {}): Promise<number> {
    const id = this.nextId++;
    await writeAll(this.conn, encodeFrame({ id, op, ...fields }));
    return id;
  }

  /** Reads the next frame; throws AgentGoneError when the connection closes. */
  async readFrame(): Promise<Frame> {
    for (;;) {
      if (this.buffer.length >= 4) {
        const len = new DataView(this.buffer.buffer, this.buffer.byteOffset).getUint32(0, false);
        if (len > MAX_FRAME) {
          throw new AgentGoneError(`agent sent an oversized frame (${len} bytes)`);
        }
        if (this.buffer.length >= 4 + len) {
          const body = this.buffer.subarray(4, 4 + len);
          this.buffer = this.buffer.slice(4 + len);
          return JSON.parse(new TextDecoder().decode(body));
        }
      }
      const chunk = new Uint8Array(64 * 1024);
      let n: number | null;
      try {
        n = await this.conn.read(chunk);
      } catch (e) {
        throw new AgentGoneError(`connection to the agent broke: ${(e as Error).message}`);
      }
      if (n === null) throw new AgentGoneError("the agent closed the connection");
      const merged = new Uint8Array(this.buffer.length + n);
      merged.set(this.buffer);
      merged.set(chunk.subarray(0, n), this.buffer.length);
      this.buffer = merged;
    }
  }

  /** Sends one request and returns its single reply (frames for other ids are passed to onOther). */
  async request(
    op: string,
    fields: Record<string, unknown> = {},
    onOther?: (f: Frame) => void,
  ): Promise<Frame> {
    const id = await this.send(op, fields);
    for (;;) {
      const f = await this.readFrame();
      if (f.id !== id) {
        onOther?.(f);
        continue;
      }
      if (f.type === "error") throw new AgentError(String(f.code ?? "ERROR"), String(f.error), f);
      return f;
    }
  }

  /**
   * Runs a command snippet: loads it (and the libraries it uses) on first
   * use, then calls it. Streamed frames (anything before the final result)
   * go to onFrame; aborting `signal` asks the agent to cancel the call,
   * which then ends with its result as usual.
   */
  async call(
    command: string,
    snippet: Source,
    args: Record<string, unknown>,
    opts: { onFrame?: (f: Frame) => void; libs?: Record<string, Source>; signal?: AbortSignal } =
      {},
  ): Promise<Record<string, unknown>> {
    const libs = opts.libs ?? {};
    const libHashes = Object.fromEntries(
      Object.entries(libs).map(([name, lib]) => [name, lib.hash]),
    );
    const maxAttempts = Object.keys(libs).length + 2;
    attempts: for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const id = await this.send("call", { command, hash: snippet.hash, args, libs: libHashes });
      const cancel = () => this.send("cancel", { target: id }).catch(() => {});
      opts.signal?.addEventListener("abort", cancel, { once: true });
      try {
        for (;;) {
          const f = await this.readFrame();
          if (f.id !== id) continue;
          if (f.type === "result") return (f.data ?? {}) as Record<string, unknown>;
          if (f.type !== "error") {
            opts.onFrame?.(f);
            continue;
          }
          if (f.code === "SNIPPET_MISSING") {
            await this.request("load", {
              name: command,
              hash: snippet.hash,
              source: snippet.source,
            });
            continue attempts;
          }
          const lib = libs[String(f.lib)];
          if (f.code === "LIB_MISSING" && lib) {
            await this.request("load", {
              kind: "lib",
              name: f.lib,
              hash: lib.hash,
              source: lib.source,
            });
            continue attempts;
          }
          throw new AgentError(String(f.code ?? "ERROR"), String(f.error), f);
        }
      } finally {
        opts.signal?.removeEventListener("abort", cancel);
      }
    }
    throw new AgentError("SNIPPET_MISSING", `the agent did not keep the code for ${command}`, {});
  }
}

/** Python source sent to the agent, named by its SHA-256. */
export interface Source {
  source: string;
  hash: string;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

export async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

export async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
