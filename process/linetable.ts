// The source line of an instruction, from a code object's line table, decoded as CPython does
// for each table format (read from the target's memory: no Python of the target's version runs
// here). All three return null when the instruction has no line.

/** 3.8-3.9 `co_lnotab`: pairs (byte offset increment, signed line increment); `lasti` in bytes. */
export function lineFromLnotab(table: Uint8Array, firstLine: number, lasti: number): number {
  let line = firstLine, addr = 0;
  for (let i = 0; i + 1 < table.length; i += 2) {
    addr += table[i];
    if (addr > lasti) break;
    line += (table[i + 1] << 24) >> 24;
  }
  return line;
}

/** 3.10 `co_linetable`: pairs (byte length, signed line delta; -128: no line); `lasti` counts
 * instructions (two bytes each), -1 before the first. */
export function lineFrom310(table: Uint8Array, firstLine: number, lasti: number): number | null {
  const target = Math.max(lasti, 0) * 2;
  let line = firstLine, start = 0;
  for (let i = 0; i + 1 < table.length; i += 2) {
    const delta = (table[i + 1] << 24) >> 24;
    if (delta !== -128) line += delta;
    const end = start + table[i];
    if (target >= start && target < end) return delta === -128 ? null : line;
    start = end;
  }
  return null;
}

/** 3.11+ location table (Objects/locations.md): entries of a header byte (1cccclll: kind c,
 * length l+1 code units) and varints; `index` counts code units. */
export function lineFromLocations(
  table: Uint8Array,
  firstLine: number,
  index: number,
): number | null {
  let line = firstLine, addr = 0, i = 0;
  const varint = () => {
    let b = table[i++], value = b & 63, shift = 6;
    while (b & 64 && i < table.length) {
      b = table[i++];
      value |= (b & 63) << shift;
      shift += 6;
    }
    return value;
  };
  const svarint = () => {
    const v = varint();
    return v & 1 ? -(v >> 1) : v >> 1;
  };
  const target = Math.max(index, 0);
  while (i < table.length) {
    const head = table[i++];
    const kind = (head >> 3) & 15, length = (head & 7) + 1;
    let delta = 0, hasLine = true;
    if (kind === 15) hasLine = false;
    else if (kind === 14) {
      delta = svarint();
      varint(), varint(), varint(); // end line, column, end column
    } else if (kind === 13) delta = svarint();
    else if (kind >= 10) {
      delta = kind - 10;
      i += 2; // start and end columns
    } else i += 1; // short form: one column byte
    line += delta;
    if (target >= addr && target < addr + length) return hasLine ? line : null;
    addr += length;
  }
  return null;
}
