// Text typed into the TUI's one-line fields. Ink hands over a paste (or keys typed faster than
// the screen reads them) as ONE input string: "shop.add\r" is the name and its Enter together.
// A field takes the text before the line end, the line end submits it, and whatever followed
// is handed on as separate keys, as if typed after the field closed (KeyQueue).

const DELETE = new Set(["\x7f", "\b"]);

/** What one input chunk does to a field's value. */
export interface Typed {
  value: string;
  /** A line end came: the field is submitted with `value`. */
  submitted: boolean;
  /** What came after the line end (keys for whatever is on screen next). */
  rest: string;
}

/** The input a field receives for one Ink key event: Enter and Backspace arrive as flags with
 * no text, everything else (a key, pasted text) as its characters. */
export function chunkOf(
  input: string,
  key: { return: boolean; backspace: boolean; delete: boolean },
): string {
  if (key.return) return "\r";
  return key.backspace || key.delete ? "\x7f" : input;
}

/** Applies one chunk to `value`: printable characters are typed, Backspace/Delete remove the
 * last character, other control characters are no text; the first line end submits. */
export function typeInto(value: string, chunk: string): Typed {
  const chars = Array.from(chunk);
  let typed = Array.from(value);
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === "\r" || c === "\n") {
      // A pasted CRLF is one line end.
      const next = c === "\r" && chars[i + 1] === "\n" ? i + 2 : i + 1;
      return { value: typed.join(""), submitted: true, rest: chars.slice(next).join("") };
    }
    if (DELETE.has(c)) typed = typed.slice(0, -1);
    else if (c >= " ") typed.push(c);
  }
  return { value: typed.join(""), submitted: false, rest: "" };
}

/**
 * Keys that followed a submitted line, handed on one at a time as if typed afterwards: each must
 * reach the key handlers of the screen the previous one led to (a field that just closed must
 * not see them; a command key such as "w" must arrive alone to be recognized). Handlers are
 * registered in React effects, and some state is derived in effects too (a panel tells the
 * screen it is typing), so a key goes out only at the second commit after the previous one:
 * the first carries what the key changed, the second what effects derived from that.
 * The owner calls next() once per commit, after its children's effects, and forces another
 * commit while keys are pending.
 */
export class KeyQueue {
  private keys: string[] = [];
  private settled = false;

  push(keys: string): void {
    this.keys.push(...Array.from(keys));
    this.settled = false;
  }

  get pending(): boolean {
    return this.keys.length > 0;
  }

  /** The key to hand on at this commit, or null (nothing pending, or a settling commit). */
  next(): string | null {
    if (!this.keys.length) return null;
    if (!this.settled) {
      this.settled = true;
      return null;
    }
    this.settled = false;
    return this.keys.shift()!;
  }
}
