// Everything peeka prints goes through Output: JSON lines (one object per
// line, the seed's types) when stdout is not a terminal or with --json,
// readable text otherwise. Errors always also go to stderr as one line.

export type Level = "info" | "warning";

export class Output {
  readonly json: boolean;
  private encoder = new TextEncoder();

  constructor(json?: boolean) {
    this.json = json ?? !Deno.stdout.isTerminal();
  }

  /** Writes one JSON object as one line (JSON mode only). */
  line(obj: Record<string, unknown>): void {
    this.write(JSON.stringify(obj) + "\n");
  }

  /** Writes text as is (human mode). */
  text(s: string): void {
    this.write(s.endsWith("\n") ? s : s + "\n");
  }

  status(message: string, extra: Record<string, unknown> = {}, level: Level = "info"): void {
    if (this.json) this.line({ type: "status", level, message, ...extra });
    else Deno.stderr.writeSync(this.encoder.encode(`${message}\n`));
  }

  success(command: string, data: Record<string, unknown>, human?: string): void {
    if (this.json) this.line({ type: "success", command, data });
    else this.text(human ?? `${command}: ok`);
  }

  result(command: string, data: unknown, human: () => string): void {
    if (this.json) this.line({ type: "result", command, data });
    else this.text(human());
  }

  event(event: string, data: Record<string, unknown> = {}, human?: string): void {
    if (this.json) this.line({ type: "event", event, data });
    else if (human) this.text(human);
  }

  /** An event about the session itself (the target exited, the agent was detached): in JSON
   * one line with its fields at the top level, as the agent's own such events; else one line. */
  sessionEvent(event: string, fields: Record<string, unknown> & { message: string }): void {
    if (this.json) this.line({ type: "event", event, ...fields });
    else Deno.stderr.writeSync(this.encoder.encode(`[${event}] ${fields.message}\n`));
  }

  /** A failure: one line that says what happened and what to do. */
  error(command: string, error: string, extra: Record<string, unknown> = {}): void {
    if (this.json) this.line({ type: "error", command, error, ...extra });
    Deno.stderr.writeSync(this.encoder.encode(`peeka ${command}: ${error}\n`));
  }

  private write(s: string): void {
    const bytes = this.encoder.encode(s);
    let off = 0;
    while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
  }
}
