/** An attach failure with a one-line explanation (what happened, what to do) and a code for JSONL. */
export class AttachError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}
