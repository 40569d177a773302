// Everything peeka prints goes through Output: JSON lines (one object per
// line, the seed's types) when stdout is not a terminal or with --json,
// readable text otherwise. Errors always also go to stderr as one line.

export type Level = "info" | "warning";

// Text from the target (function names, reprs, thread names, messages) is data of the target's
// user, who may not be the one reading (root): terminal control sequences in it could rewrite
// the screen, set the title or the clipboard. Human output shows them escaped; JSON escapes
// C0 itself, and C1 and DEL here (a terminal may act on them when JSON is read on a terminal).
// Bidirectional overrides are escaped too: they make text read differently from what it is.
// deno-lint-ignore no-control-regex -- matching control characters is the point
const UNPRINTABLE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
const JSON_UNSAFE = /[\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
const hex4 = (c: string) => c.charCodeAt(0).toString(16).padStart(4, "0");

/** `text` with control characters (but newline and tab) shown as \xNN or \uNNNN. */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${hex4(c)}`;
  });
}

/** A copy of `value` whose every string is printable() (for views that render agent data). */
export function printableDeep<T>(value: T): T {
  if (typeof value === "string") return printable(value) as T;
  if (Array.isArray(value)) return value.map(printableDeep) as T;
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [printable(k), printableDeep(v)]),
    ) as T;
  }
  return value;
}

export class Output {
  readonly json: boolean;
  private encoder = new TextEncoder();

  /** `tag` starts every human line (and error message on stderr): one process of a set's
   * "[pid role] " (core/member_output.ts). */
  constructor(json?: boolean, private readonly tag = "") {
    this.json = json ?? !Deno.stdout.isTerminal();
  }

  /** Writes one JSON object as one line (JSON mode only). */
  line(obj: Record<string, unknown>): void {
    this.write(JSON.stringify(obj).replace(JSON_UNSAFE, (c) => `\\u${hex4(c)}`) + "\n");
  }

  /** Writes text (human mode), control characters escaped. */
  text(s: string): void {
    const safe = printable(this.tag + s);
    this.write(safe.endsWith("\n") ? safe : safe + "\n");
  }

  /** Clears a terminal before a refreshed table (nothing in JSON mode or in a pipe). */
  clearScreen(): void {
    if (!this.json && Deno.stdout.isTerminal()) this.write("\x1b[H\x1b[2J");
  }

  status(message: string, extra: Record<string, unknown> = {}, level: Level = "info"): void {
    if (this.json) this.line({ type: "status", level, message, ...extra });
    else Deno.stderr.writeSync(this.encoder.encode(`${printable(this.tag + message)}\n`));
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
    else {
      const message = printable(this.tag + fields.message);
      Deno.stderr.writeSync(this.encoder.encode(`[${event}] ${message}\n`));
    }
  }

  /** A failure: one line that says what happened and what to do. */
  error(command: string, error: string, extra: Record<string, unknown> = {}): void {
    if (this.json) this.line({ type: "error", command, error, ...extra });
    Deno.stderr.writeSync(
      this.encoder.encode(`peeka ${command}: ${printable(this.tag + error)}\n`),
    );
  }

  private write(s: string): void {
    const bytes = this.encoder.encode(s);
    let off = 0;
    while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
  }
}
