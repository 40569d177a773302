// What the TUI does with one target: attach, run the same commands the CLI runs
// (thread, watch, monitor, top) through their definitions, detach. Each stream
// has its own connection, so stopping one (cancel) leaves the others running.
import { attach } from "../attach/attach.ts";
import { callCommand } from "../core/call.ts";
import { printable, printableDeep } from "../core/output.ts";
import type { PeekaCommand } from "../core/command.ts";
import { AgentClient, type Frame } from "../core/protocol.ts";
import { rememberSession, sessionPaths } from "../core/session.ts";
import { detachProcess } from "../attach/detach.ts";
import { builtinCommand } from "../commands/registry.ts";
import { pythonDescendants } from "../core/processes.ts";

export type Item = Record<string, unknown>;

export interface Stream {
  stop(): void;
  done: Promise<void>;
}

/** What the panels work on: one process, or a master's workers as one (TargetGroup). */
export interface Target {
  /** The process, or the master whose workers these are. */
  readonly pid: number;
  readonly pythonVersion: string;
  /** "process 12", "the 3 workers of 12". */
  readonly label: string;
  threads(): Promise<Item>;
  stream: StreamCommand;
  detach(): Promise<string[]>;
}

/** Runs a streaming command; each observation or event reaches onItem (batches unpacked). */
export type StreamCommand = (
  cmd: PeekaCommand,
  request: Record<string, unknown>,
  onItem: (item: Item) => void,
  onEnd: (error?: string) => void,
) => Stream;

export class TargetSession implements Target {
  private constructor(readonly pid: number, readonly pythonVersion: string) {}

  /** Attaches; the process becomes the CLI's current session unless it is one of a group. */
  static async attach(pid: number, remember = true): Promise<TargetSession> {
    const r = await attach(pid, { timeoutMs: 10000 });
    if (remember) rememberSession(pid);
    return new TargetSession(pid, r.python_version);
  }

  get label(): string {
    return `process ${this.pid}`;
  }

  private connect(): Promise<AgentClient> {
    return AgentClient.connect(sessionPaths(this.pid).socket);
  }

  /** One call of a command that answers once (thread). */
  async call(cmd: PeekaCommand, request: Record<string, unknown>): Promise<Item> {
    const client = await this.connect();
    try {
      return printableDeep(await callCommand(client, cmd, request));
    } finally {
      client.close();
    }
  }

  threads(): Promise<Item> {
    return this.call(builtinCommand("thread"), { depth: 30 });
  }

  /** Runs a streaming command; each observation or event reaches onItem (batches unpacked). */
  stream(
    cmd: PeekaCommand,
    request: Record<string, unknown>,
    onItem: (item: Item) => void,
    onEnd: (error?: string) => void,
  ): Stream {
    const abort = new AbortController();
    const done = (async () => {
      let client: AgentClient | null = null;
      try {
        client = await this.connect();
        await callCommand(client, cmd, request, {
          signal: abort.signal,
          onFrame: (f: Frame) => {
            const items = f.type === "batch" ? (f.items as Item[]) : [f as Item];
            for (const item of items) onItem(printableDeep(item));
          },
        });
        onEnd();
      } catch (e) {
        onEnd(printable(e instanceof Error ? e.message : String(e)));
      } finally {
        client?.close();
      }
    })();
    return { stop: () => abort.abort(), done };
  }

  async detach(): Promise<string[]> {
    const client = await this.connect();
    try {
      return (await detachProcess(this.pid, client)).errors;
    } finally {
      client.close();
    }
  }
}

/** A master's Python workers as one target: threads of all, streams merged (each item with its
 * worker's `pid`), detach from all. The workers are those found at the attach. */
export class TargetGroup implements Target {
  private constructor(readonly pid: number, private readonly members: TargetSession[]) {}

  static async attach(master: number): Promise<TargetGroup> {
    const pids = pythonDescendants(master);
    if (!pids.length) throw new Error(`process ${master} has no Python child processes`);
    return new TargetGroup(
      master,
      await Promise.all(pids.map((pid) => TargetSession.attach(pid, false))),
    );
  }

  get pythonVersion(): string {
    return this.members[0].pythonVersion;
  }

  get label(): string {
    return `the ${this.members.length} workers of ${this.pid}`;
  }

  /** Every worker's threads, each named and keyed with its pid (forked workers share idents). */
  async threads(): Promise<Item> {
    const each = await Promise.all(this.members.map(async (m) => {
      const threads = (await m.threads()).threads as Item[];
      return threads.map((t) => ({
        ...t,
        name: `${m.pid} ${t.name}`,
        ident: `${m.pid}:${t.ident}`,
      }));
    }));
    return { threads: each.flat() };
  }

  readonly stream: StreamCommand = (cmd, request, onItem, onEnd) => {
    const errors: string[] = [];
    const streams = this.members.map((m) =>
      m.stream(cmd, request, (item) => onItem({ ...item, pid: m.pid }), (error) => {
        if (error) errors.push(`${m.pid}: ${error}`);
      })
    );
    const done = Promise.all(streams.map((s) => s.done)).then(() =>
      onEnd(errors.length ? errors.join("; ") : undefined)
    );
    return { stop: () => streams.forEach((s) => s.stop()), done };
  };

  async detach(): Promise<string[]> {
    return (await Promise.all(this.members.map((m) => m.detach()))).flat();
  }
}
