// The output of one process of a set: the same printing as for one process, every JSON object
// carrying the process's `pid` (and `role` when known), every human block and stderr message
// starting with "[pid role]".
import { Output } from "./output.ts";
import type { Member } from "./fleet.ts";

export class MemberOutput extends Output {
  private readonly tags: Record<string, unknown>;

  constructor(set: Output, member: Member) {
    super(set.json, `[${member.pid}${member.role ? ` ${member.role}` : ""}] `);
    this.tags = member.role ? { pid: member.pid, role: member.role } : { pid: member.pid };
  }

  override line(obj: Record<string, unknown>): void {
    super.line({ ...obj, ...this.tags });
  }

  /** A table refreshed in place would wipe the other processes' output: never cleared. */
  override clearScreen(): void {}
}
