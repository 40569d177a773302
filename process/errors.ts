// The error family. Every failure peeka reports to the user is a PeekaError: a code (what a
// script matches on, the JSONL `code`) and a one-line message (what happened, what to do). A
// subclass exists where a layer catches its own failures by kind, or where it carries more.

/** A failure with a code for JSONL and a one-line explanation for people. */
export class PeekaError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Reaching into the target failed (checks, injection); attach() may try the next mechanism. */
export class AttachError extends PeekaError {}
