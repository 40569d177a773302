// Python objects read from outside the target (process_vm_readv) and shown as short reprs
// without running any of its code: no __repr__, no property, no callback. Only the simple
// built-in types are rendered from their memory (None, bool, int, float, str, bytes; list,
// tuple and dict as their length); anything else is `<TypeName object at 0x...>`, the name read
// from ob_type->tp_name. An object is only believed when its ob_type is the exported type's
// address, every length is capped, and what does not check out is `<unreadable>`: a wrong
// value is worse than none. The offsets are the version's (`ObjectOffsets`: peeka's for
// 3.8-3.12, from the target's _Py_DebugOffsets on 3.13+, where 3.14 moved a tuple's items).
import type { MemoryReader } from "./libc.ts";

export const plausible = (p: bigint) => p > 0x10000n && p < 0x800000000000n && (p & 7n) === 0n;

/** Fields no _Py_DebugOffsets describes, the same in every version's headers (3.8-3.12 by
 * tools/pylayouts.c; 3.13-3.15 Include/cpython/{unicodeobject,bytesobject,dictobject,
 * cellobject}.h): a str's length and state, a bytes' size, a dict's ma_used, a cell's ob_ref. */
export const FIXED_OFFSETS = {
  strLength: 16,
  strState: 32,
  bytesSize: 16,
  dictUsed: 16,
  cellRef: 16,
} as const;
const { strLength: STR_LENGTH, strState: STR_STATE, bytesSize: BYTES_SIZE } = FIXED_OFFSETS;
const { dictUsed: DICT_USED, cellRef: CELL_REF } = FIXED_OFFSETS;
const DIGIT_BITS = 30n;

/** Reprs stay short: a longer str or bytes is cut, an int beyond this many digits is sized. */
const MAX_TEXT = 60;
const MAX_LONG_DIGITS = 34; // 1020 bits, about 300 decimal digits
const MAX_TYPE_NAME = 96;
const MAX_ITEMS = 2 ** 40;
export const UNREADABLE = "<unreadable>";

/** The addresses in the target of the objects and types compared with. */
export interface ObjectSymbols {
  none: bigint;
  true: bigint;
  false: bigint;
  type: bigint;
  str: bigint;
  bytes: bigint;
  int: bigint;
  float: bigint;
  list: bigint;
  tuple: bigint;
  dict: bigint;
  cell: bigint;
}

/** Where a version keeps the fields of the objects rendered. */
export interface ObjectOffsets {
  /** PyObject.ob_type */
  obType: number;
  /** PyTypeObject.tp_name */
  tpName: number;
  /** PyTupleObject's (and PyListObject's) ob_size, and the tuple's ob_item. */
  varSize: number;
  tupleItems: number;
  /** PyFloatObject.ob_fval */
  floatValue: number;
  /** PyLongObject: ob_size (3.8-3.11, a signed digit count) or lv_tag (3.12+, sign and count:
   * `longTag`), and ob_digit. */
  longSize: number;
  longTag: boolean;
  longDigits: number;
}

/** 3.8-3.12 (tools/pylayouts.c prints them from each version's headers). */
export const OBJECT_OFFSETS_38: ObjectOffsets = {
  obType: 8,
  tpName: 24,
  varSize: 16,
  tupleItems: 24,
  floatValue: 16,
  longSize: 16,
  longTag: false,
  longDigits: 24,
};

export interface ObjectLayout extends ObjectOffsets {
  /** Where a compact str's characters start: after PyASCIIObject (ASCII) or
   * PyCompactUnicodeObject. */
  str: { ascii: number; compact: number };
  /** PyBytesObject.ob_sval */
  bytesData: number;
}

export interface Rendered {
  repr: string;
  /** ob_type->tp_name, null when unreadable. */
  type: string | null;
}

export class ObjectReader {
  private typeNames = new Map<bigint, string | null>();

  constructor(
    private memory: MemoryReader,
    private sym: ObjectSymbols,
    private layout: ObjectLayout,
  ) {}

  /** A str object's text, at most `cap` characters, and its whole length. */
  text(addr: bigint, cap: number): { text: string; length: number } | null {
    const head = this.ofType(addr, this.sym.str, STR_STATE + 4);
    if (!head) return null;
    const length = Number(head.getBigInt64(STR_LENGTH, true));
    const state = head.getUint32(STR_STATE, true);
    const kind = (state >> 2) & 7, compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
    if (!compact || length < 0 || length > MAX_ITEMS || ![1, 2, 4].includes(kind)) return null;
    const shown = Math.min(length, cap);
    const S = this.layout.str;
    const data = this.memory.read(addr + BigInt(ascii ? S.ascii : S.compact), shown * kind);
    if (!data) return null;
    const dv = new DataView(data.buffer);
    const units: number[] = [];
    for (let i = 0; i < shown; i++) {
      const unit = kind === 1
        ? data[i]
        : kind === 2
        ? dv.getUint16(2 * i, true)
        : dv.getUint32(4 * i, true);
      if (unit > 0x10ffff || (ascii && unit > 0x7f)) return null;
      units.push(unit);
    }
    return { text: String.fromCodePoint(...units), length };
  }

  /** A bytes object's contents, at most `cap` bytes, and its whole size. */
  bytes(addr: bigint, cap: number): { data: Uint8Array; size: number } | null {
    const head = this.ofType(addr, this.sym.bytes, BYTES_SIZE + 8);
    if (!head) return null;
    const size = Number(head.getBigInt64(BYTES_SIZE, true));
    if (size < 0 || size > MAX_ITEMS) return null;
    const shown = Math.min(size, cap);
    const data = shown === 0
      ? new Uint8Array(0)
      : this.memory.read(addr + BigInt(this.layout.bytesData), shown);
    return data && { data, size };
  }

  /** A tuple's item pointers (at most `cap`), null when it is not a tuple. */
  tupleItems(addr: bigint, cap: number): bigint[] | null {
    const L = this.layout;
    const size = this.ofType(addr, this.sym.tuple, L.varSize + 8)?.getBigInt64(L.varSize, true);
    if (size === undefined || size < 0n || size > BigInt(cap)) return null;
    if (size === 0n) return [];
    const data = this.memory.read(addr + BigInt(L.tupleItems), Number(size) * 8);
    if (!data) return null;
    const dv = new DataView(data.buffer);
    return Array.from({ length: Number(size) }, (_, i) => dv.getBigUint64(8 * i, true));
  }

  /** The short repr of the object at `addr` (a cell shows what it holds); never throws. */
  render(addr: bigint, inCell = false): Rendered {
    const S = this.sym;
    if (addr === S.none) return { repr: "None", type: "NoneType" };
    if (addr === S.true || addr === S.false) {
      return { repr: addr === S.true ? "True" : "False", type: "bool" };
    }
    const type = plausible(addr) ? this.u64(addr + BigInt(this.layout.obType)) : null;
    const name = type === null ? null : this.typeName(type);
    if (type === null || name === null) return { repr: UNREADABLE, type: null };
    const repr = this.reprOf(addr, type, name, inCell) ?? UNREADABLE;
    return { repr, type: type === S.cell && !inCell ? "cell" : name };
  }

  private reprOf(addr: bigint, type: bigint, name: string, inCell: boolean): string | null {
    const S = this.sym, L = this.layout;
    switch (type) {
      case S.int:
        return this.int(addr);
      case S.float: {
        const value = this.view(addr + BigInt(L.floatValue), 8)?.getFloat64(0, true);
        return value === undefined ? null : pyFloatRepr(value);
      }
      case S.str: {
        const s = this.text(addr, MAX_TEXT);
        return s && cut(pyQuote(s.text), s.length, s.text.length, "chars");
      }
      case S.bytes: {
        const b = this.bytes(addr, MAX_TEXT);
        return b && cut(pyBytes(b.data), b.size, b.data.length, "bytes");
      }
      case S.list:
      case S.tuple:
      case S.dict: {
        const at = addr + BigInt(type === S.dict ? DICT_USED : L.varSize);
        const size = this.view(at, 8)?.getBigInt64(0, true);
        if (size === undefined || size < 0n || size > BigInt(MAX_ITEMS)) return null;
        return `<${name} of ${size} item${size === 1n ? "" : "s"}>`;
      }
      case S.cell: {
        if (inCell) return null;
        const ref = this.u64(addr + BigInt(CELL_REF));
        if (ref === null) return null;
        return ref === 0n ? "<empty cell>" : this.render(ref, true).repr;
      }
      default:
        return `<${name} object at 0x${addr.toString(16)}>`;
    }
  }

  /** An int's value from its 30-bit digits; a huge one is only sized. */
  private int(addr: bigint): string | null {
    const L = this.layout;
    const size = this.view(addr + BigInt(L.longSize), 8);
    if (!size) return null;
    let negative: boolean, count: number;
    if (L.longTag) {
      const tag = size.getBigUint64(0, true);
      const sign = Number(tag & 3n); // 0: positive, 1: zero, 2: negative
      if (sign === 3) return null;
      negative = sign === 2;
      count = sign === 1 ? 0 : Number(tag >> 3n);
    } else {
      const signed = size.getBigInt64(0, true);
      negative = signed < 0n;
      count = Number(negative ? -signed : signed);
    }
    if (count === 0) return "0";
    if (count > MAX_LONG_DIGITS) {
      if (count > MAX_ITEMS) return null;
      return `<int of about ${Math.floor(count * 30 * Math.LOG10E * Math.LN2)} digits>`;
    }
    const data = this.memory.read(addr + BigInt(L.longDigits), count * 4);
    if (!data) return null;
    const dv = new DataView(data.buffer);
    let value = 0n;
    for (let i = count - 1; i >= 0; i--) {
      const digit = dv.getUint32(4 * i, true);
      if (digit >> 30) return null; // a digit uses 30 bits: this is not an int
      value = (value << DIGIT_BITS) | BigInt(digit);
    }
    return (negative ? "-" : "") + value.toString();
  }

  /** tp_name of a type object (whose own type is `type` or a metaclass of it), read once. */
  typeName(type: bigint): string | null {
    if (!this.typeNames.has(type)) this.typeNames.set(type, this.readTypeName(type));
    return this.typeNames.get(type)!;
  }

  private readTypeName(type: bigint): string | null {
    const L = this.layout;
    const meta = plausible(type) ? this.u64(type + BigInt(L.obType)) : null;
    const isType = meta === this.sym.type ||
      (meta !== null && plausible(meta) && this.u64(meta + BigInt(L.obType)) === this.sym.type);
    const name = isType ? this.u64(type + BigInt(L.tpName)) : null;
    return name === null ? null : this.cString(name);
  }

  /** A NUL-terminated UTF-8 name, read a page at a time (never past its page), bounded. */
  private cString(addr: bigint): string | null {
    if (addr <= 0x10000n || addr >= 0x800000000000n) return null;
    const bytes: number[] = [];
    for (let at = addr; bytes.length < MAX_TYPE_NAME;) {
      const inPage = 4096 - Number(at % 4096n);
      const chunk = this.memory.read(at, Math.min(inPage, MAX_TYPE_NAME - bytes.length));
      if (!chunk) return null;
      const end = chunk.indexOf(0);
      bytes.push(...(end < 0 ? chunk : chunk.subarray(0, end)));
      if (end >= 0) return utf8Name(bytes);
      at += BigInt(chunk.length);
    }
    return null;
  }

  /** The head of an object whose ob_type is `type`, else null. */
  private ofType(addr: bigint, type: bigint, size: number): DataView | null {
    if (!plausible(addr)) return null;
    const head = this.view(addr, size);
    return head && head.getBigUint64(this.layout.obType, true) === type ? head : null;
  }

  private u64(addr: bigint): bigint | null {
    return this.view(addr, 8)?.getBigUint64(0, true) ?? null;
  }

  private view(addr: bigint, len: number): DataView | null {
    const b = this.memory.read(addr, len);
    return b && new DataView(b.buffer);
  }
}

/** A type's name: non-empty UTF-8 without control characters, else null. */
function utf8Name(bytes: number[]): string | null {
  if (!bytes.length || bytes.some((b) => b < 0x20 || b === 0x7f)) return null;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes));
  } catch {
    return null;
  }
}

/** `'abc'...` and the whole length when only a part was read. */
function cut(repr: string, length: number, shown: number, unit: string): string {
  return shown < length ? `${repr}... (${length} ${unit})` : repr;
}

/** Python's repr of a str: its quote choice and escapes (printable non-ASCII kept). */
export function pyQuote(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\\" || ch === quote) out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || (c >= 0x7f && c < 0xa0)) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + quote;
}

/** Python's repr of bytes: b'...', non-printable bytes as \xNN. */
export function pyBytes(data: Uint8Array): string {
  const has = (c: number) => data.includes(c);
  const quote = has(0x27) && !has(0x22) ? '"' : "'";
  let out = "b" + quote;
  for (const c of data) {
    const ch = String.fromCharCode(c);
    if (ch === "\\" || ch === quote) out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c >= 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + quote;
}

/** Python's repr of a float: the shortest digits that read back, in fixed notation while the
 * decimal point falls within 16 digits of them (as float_repr_style 'short' does). */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  const [mantissa, exponent] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const point = Number(exponent) + 1; // the value is 0.DIGITS × 10^point
  if (point > 16 || point <= -4) {
    const e = point - 1;
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  }
  if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${"0".repeat(point - digits.length)}.0`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}
