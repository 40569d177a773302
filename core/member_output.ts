// The output of one process of a set: the same printing as for one process, every JSON object
// carrying the process's `pid` (and `role` when known), every human line prefixed with them.
import { type Level, Output } from "./output.ts";
import type { Member } from "./fleet.ts";

export class MemberOutput extends Output {
  private readonly label: string;

  constructor(private readonly parent: Output, private readonly member: Member) {
    super(parent.json);
    this.label = `[${member.pid}${member.role ? ` ${member.role}` : ""}]`;
  }

  override line(obj: Record<string, unknown>): void {
    const tags = this.member.role ? { pid: this.member.pid, role: this.member.role } : {
      pid: this.member.pid,
    };
    this.parent.line({ ...obj, ...tags });
  }

  override text(s: string): void {
    this.parent.text(`${this.label} ${s}`);
  }

  override status(message: string, extra: Record<string, unknown> = {}, level?: Level): void {
    if (this.json) super.status(message, extra, level);
    else this.parent.status(`${this.label} ${message}`, extra, level);
  }

  override sessionEvent(event: string, fields: Record<string, unknown> & { message: string }) {
    if (this.json) super.sessionEvent(event, fields);
    else this.parent.sessionEvent(event, { ...fields, message: `${this.label} ${fields.message}` });
  }

  override error(command: string, error: string, extra: Record<string, unknown> = {}): void {
    if (this.json) super.error(command, error, extra);
    else this.parent.error(command, `${this.label} ${error}`, extra);
  }

  /** A table refreshed in place would wipe the other processes' output: never cleared. */
  override clearScreen(): void {}
}
