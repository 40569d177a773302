// The client side of the wire protocol: 4-byte big-endian length + UTF-8
// JSON object, both ways, over the agent's Unix socket. Requests carry an
// integer id and an op; replies and streamed frames carry the same id.

export const MAX_FRAME = 16 * 1024 * 1024;

import type { Source } from "../agent/source.ts";
import { diagnose, type Diagnosis } from "./diagnose.ts";
import { PeekaError } from "../process/errors.ts";

export type Frame = Record<string, unknown> & { id?: number; type?: string };

/** The connection to the agent broke or closed (the CLI says why from what /proc shows). */
export class AgentGoneError extends PeekaError {
  constructor(message: string) {
    super("AGENT_GONE", message);
  }
}

/** The agent answered with an error frame; the frame is kept for its details. */
export class AgentError extends PeekaError {
  constructor(code: string, message: string, readonly frame: Frame) {
    super(code, message);
  }
}

/** The agent did not answer in time; the message says why, from what /proc shows. */
export class AgentTimeoutError extends PeekaError {
  constructor(message: string, readonly diagnosis: Diagnosis | null) {
    super("AGENT_TIMEOUT", message);
  }
}

/** Events that end a session for every client: the agent says so before it goes. */
export const SESSION_END_EVENTS = new Set(["agent_detached", "target_exiting"]);

/** The connection closed after the agent said why (another client detached it, the target exits). */
export class SessionEndedError extends PeekaError {
  constructor(readonly event: Frame) {
    super(
      event.event === "agent_detached" ? "AGENT_DETACHED" : "TARGET_EXITED",
      String(
        event.message ??
          (event.event === "agent_detached"
            ? "another client detached the agent"
            : "the target is exiting"),
      ),
    );
  }
}

export function isSessionEnd(f: Frame): boolean {
  return f.type === "event" && SESSION_END_EVENTS.has(String(f.event));
}

/** How long a request may wait for its reply: PEEKA_REQUEST_TIMEOUT_MS, else 10 s. */
export function defaultRequestTimeoutMs(): number {
  let text: string | undefined;
  try {
    text = Deno.env.get("PEEKA_REQUEST_TIMEOUT_MS");
  } catch { /* no env permission: the default */ }
  const ms = Number(text);
  return text && Number.isFinite(ms) && ms > 0 ? ms : 10_000;
}

/**
 * A point in time that a wait must not pass. It can move (a streaming call
 * has no deadline once started, until it is cancelled), and waiters are woken
 * when it does, so a wait already under way follows the new deadline.
 */
export class Deadline {
  private at: number;
  private wakers = new Set<() => void>();

  constructor(public ms: number) {
    this.at = performance.now() + ms;
  }

  /** A new deadline `ms` from now. */
  restart(ms: number): void {
    this.ms = ms;
    this.at = performance.now() + ms;
    this.wakeAll();
  }

  /** No deadline any more (a stream that started may last as long as the user wants). */
  clear(): void {
    this.at = Infinity;
    this.wakeAll();
  }

  get expired(): boolean {
    return performance.now() >= this.at;
  }

  /** Resolves when the deadline passes or moves; dispose() when no longer waiting. */
  change(): { promise: Promise<void>; dispose(): void } {
    let wake!: () => void;
    const promise = new Promise<void>((r) => (wake = r));
    this.wakers.add(wake);
    const left = this.at - performance.now();
    const timer = Number.isFinite(left) ? setTimeout(wake, Math.max(0, left)) : undefined;
    return {
      promise,
      dispose: () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
      },
    };
  }

  private wakeAll(): void {
    for (const wake of [...this.wakers]) wake();
  }
}

export function encodeFrame(obj: unknown): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify(obj));
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, false);
  out.set(body, 4);
  return out;
}

/** The target's pid, from its session directory's name (<pid>-<start time>). */
export function pidOfSocket(socketPath: string): number | null {
  const m = /\/(\d+)-\d+\/agent\.sock$/.exec(socketPath);
  return m ? Number(m[1]) : null;
}

/** Options of a snippet call. */
export interface CallOptions {
  onFrame?: (f: Frame) => void;
  libs?: Record<string, Source>;
  signal?: AbortSignal;
  /** A streaming call's deadline covers its start only (loading and its first frame). */
  streaming?: boolean;
  /** How long the call may take before its result (or its first frame, when streaming). */
  timeoutMs?: number;
}

/** One connection to an agent. Frames are read in order; each has the id of its request. */
export class AgentClient {
  private nextId = 1;
  private buffer = new Uint8Array(0);
  /** A read under way: kept across waits so a deadline never loses bytes. */
  private pendingRead: Promise<Uint8Array | null> | null = null;
  readonly pid: number | null;
  /** The deadline of each request and of each call's start. */
  timeoutMs = defaultRequestTimeoutMs();

  private constructor(private conn: Deno.UnixConn, readonly socketPath: string) {
    this.pid = pidOfSocket(socketPath);
  }

  static async connect(socketPath: string, timeoutMs = 2000): Promise<AgentClient> {
    let timedOut = false;
    const connecting = Deno.connect({ transport: "unix", path: socketPath });
    // Left behind by the deadline, a connection that completes later is closed at once.
    connecting.then((late) => timedOut && late.close(), () => {});
    try {
      return new AgentClient(
        await withTimeout(connecting, timeoutMs, `timed out connecting to ${socketPath}`),
        socketPath,
      );
    } catch (e) {
      if (!(e instanceof DeadlineError)) throw e;
      timedOut = true;
      // A full listen backlog (an agent that accepts nothing) makes connect wait: say why.
      throw await timeoutError(pidOfSocket(socketPath), "the connection", timeoutMs);
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  async send(
    op: string,
    fields: Record<string, unknown> = {},
    deadline?: Deadline,
  ): Promise<number> {
    const id = this.nextId++;
    const written = writeAll(this.conn, encodeFrame({ id, op, ...fields }));
    written.catch(() => {}); // a write left behind by a deadline must not reject unhandled
    await (deadline ? this.within(written, deadline, `'${op}'`) : written);
    return id;
  }

  /** Reads the next frame; throws AgentGoneError when the connection closes, AgentTimeoutError
   * when `deadline` passes first. */
  async readFrame(deadline?: Deadline, what = "the request"): Promise<Frame> {
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
      const read = this.nextChunk();
      const chunk = await (deadline ? this.within(read, deadline, what) : read);
      if (chunk === null) throw new AgentGoneError("the agent closed the connection");
      const merged = new Uint8Array(this.buffer.length + chunk.length);
      merged.set(this.buffer);
      merged.set(chunk, this.buffer.length);
      this.buffer = merged;
    }
  }

  /** The read under way, or a new one. */
  private nextChunk(): Promise<Uint8Array | null> {
    if (this.pendingRead) return this.pendingRead;
    const chunk = new Uint8Array(64 * 1024);
    const read = this.conn.read(chunk).then(
      (n) => {
        this.pendingRead = null;
        return n === null ? null : chunk.subarray(0, n);
      },
      (e) => {
        this.pendingRead = null;
        throw new AgentGoneError(`connection to the agent broke: ${(e as Error).message}`);
      },
    );
    read.catch(() => {}); // left behind by a deadline, then the connection closed: not an error
    this.pendingRead = read;
    return read;
  }

  /** Waits for `work` until `deadline`, following the deadline as it moves. */
  private async within<T>(work: Promise<T>, deadline: Deadline, what: string): Promise<T> {
    for (;;) {
      if (deadline.expired) throw await timeoutError(this.pid, what, deadline.ms);
      const moved = deadline.change();
      try {
        const done = await Promise.race([
          work.then((value) => ({ value })),
          moved.promise.then(() => null),
        ]);
        if (done) return done.value;
      } finally {
        moved.dispose();
      }
    }
  }

  /** Sends one request and returns its single reply (frames for other ids are passed to onOther).
   * The reply must come within `limit` (ms, or a Deadline shared with a call). */
  async request(
    op: string,
    fields: Record<string, unknown> = {},
    onOther?: (f: Frame) => void,
    limit: number | Deadline = this.timeoutMs,
  ): Promise<Frame> {
    const deadline = typeof limit === "number" ? new Deadline(limit) : limit;
    const id = await this.send(op, fields, deadline);
    for (;;) {
      const f = await this.readFrame(deadline, `'${op}'`);
      // An event is never a reply, even when the agent addresses it to this request.
      if (f.id !== id || f.type === "event") {
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
   *
   * Deadlines: a call must reach its result (a streaming call: its first
   * frame) within `timeoutMs`, and after a cancel its result must come within
   * the request deadline. A session-ending event (another client detached the
   * agent, the target exits) is passed to onFrame; if the connection then
   * closes, SessionEndedError says why.
   */
  async call(
    command: string,
    snippet: Source,
    args: Record<string, unknown>,
    opts: CallOptions = {},
  ): Promise<Record<string, unknown>> {
    const deadline = new Deadline(opts.timeoutMs ?? this.timeoutMs);
    let ended: Frame | null = null;
    try {
      return await this.callWithin(command, snippet, args, opts, deadline, (f) => (ended = f));
    } catch (e) {
      const closed = e instanceof AgentGoneError || e instanceof AgentTimeoutError;
      if (ended && closed) throw new SessionEndedError(ended);
      throw e;
    }
  }

  /** Calls; when the agent lacks the snippet or libraries, loads all of them in one request and
   * calls again. A second miss (another client replaced the code meanwhile) is an error. */
  private async callWithin(
    command: string,
    snippet: Source,
    args: Record<string, unknown>,
    opts: CallOptions,
    deadline: Deadline,
    onSessionEnd: (f: Frame) => void,
  ): Promise<Record<string, unknown>> {
    const libs = opts.libs ?? {};
    const request = { command, hash: snippet.hash, args, libs: hashesOf(libs) };
    const first = await this.callOnce(request, opts, deadline, onSessionEnd);
    if (!first.missing) return first.data;
    const items = missingItems(command, snippet, libs, first.missing);
    await this.request("load", { items }, undefined, deadline);
    const second = await this.callOnce(request, opts, deadline, onSessionEnd);
    if (!second.missing) return second.data;
    throw new AgentError(
      String(second.missing.code),
      `the agent did not keep the code for ${command}: ${second.missing.error}`,
      second.missing,
    );
  }

  /** One `call` request: its result, or the error frame saying what code the agent lacks. */
  private async callOnce(
    request: { command: string } & Record<string, unknown>,
    opts: CallOptions,
    deadline: Deadline,
    onSessionEnd: (f: Frame) => void,
  ): Promise<{ data: Record<string, unknown>; missing?: undefined } | { missing: Frame }> {
    const what = `'${request.command}'`;
    const id = await this.send("call", request, deadline);
    // Once cancelled, the call's end is bounded again: the agent must answer the cancel.
    const cancel = () => {
      deadline.restart(this.timeoutMs);
      this.send("cancel", { target: id }).catch(() => {});
    };
    if (opts.signal?.aborted) cancel();
    else opts.signal?.addEventListener("abort", cancel, { once: true });
    try {
      for (;;) {
        const f = await this.readFrame(deadline, what);
        if (isSessionEnd(f)) {
          onSessionEnd(f);
          deadline.restart(this.timeoutMs); // the agent closes the connection next
          opts.onFrame?.(f);
          continue;
        }
        if (f.id !== id) continue;
        if (f.type === "result") return { data: (f.data ?? {}) as Record<string, unknown> };
        if (f.type !== "error") {
          if (opts.streaming && !opts.signal?.aborted) deadline.clear(); // started
          opts.onFrame?.(f);
          continue;
        }
        if (MISSING_CODES.has(String(f.code))) return { missing: f };
        throw new AgentError(String(f.code ?? "ERROR"), String(f.error), f);
      }
    } finally {
      opts.signal?.removeEventListener("abort", cancel);
    }
  }
}

/** The errors of a call whose code the agent does not have (loaded by the client, once). */
const MISSING_CODES = new Set(["SNIPPET_MISSING", "LIB_MISSING"]);

function hashesOf(libs: Record<string, Source>): Record<string, string> {
  return Object.fromEntries(Object.entries(libs).map(([name, lib]) => [name, lib.hash]));
}

/** The load items for what a call's error says is missing: libraries first (in the order of
 * `libs`, which puts a library after the ones it requires), then the snippet. */
export function missingItems(
  command: string,
  snippet: Source,
  libs: Record<string, Source>,
  error: Frame,
): Record<string, unknown>[] {
  const missing = error.missing as { snippet?: boolean; libs?: string[] } | undefined;
  // An agent that does not list what it lacks gets everything (a loaded library is kept as is).
  const lacking = new Set(missing?.libs ?? Object.keys(libs));
  const snippetMissing = missing?.snippet ?? error.code === "SNIPPET_MISSING";
  const items = Object.entries(libs).filter(([name]) => lacking.has(name)).map(([name, lib]) => ({
    kind: "lib",
    ...loadItem(name, lib),
  }));
  return snippetMissing ? [...items, loadItem(command, snippet)] : items;
}

function loadItem(name: string, code: Source): Record<string, unknown> {
  return { name, hash: code.hash, source: code.source };
}

/** An expired deadline, with why the target's agent did not answer (read from /proc). */
async function timeoutError(
  pid: number | null,
  what: string,
  ms: number,
): Promise<AgentTimeoutError> {
  const seconds = `${Math.round(ms / 100) / 10} s`;
  if (pid === null) {
    return new AgentTimeoutError(`the agent did not answer ${what} within ${seconds}`, null);
  }
  const d = await diagnose(pid);
  return new AgentTimeoutError(
    `the agent of process ${pid} did not answer ${what} within ${seconds}: ${d.message}`,
    d,
  );
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** What withTimeout throws. */
export class DeadlineError extends Error {}

export async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(message)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}
