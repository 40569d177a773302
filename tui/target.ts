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

export type Item = Record<string, unknown>;

export interface Stream {
  stop(): void;
  done: Promise<void>;
}

export class TargetSession {
  private constructor(readonly pid: number, readonly pythonVersion: string) {}

  static async attach(pid: number): Promise<TargetSession> {
    const r = await attach(pid, { timeoutMs: 10000 });
    rememberSession(pid);
    return new TargetSession(pid, r.python_version);
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
