// A minimal ELF64 little-endian reader: program headers, section headers and
// the dynamic symbol table. Enough to find the C API functions the injector
// calls and the padding after a code segment.

export interface Segment {
  type: number;
  flags: number; // PF_X=1, PF_W=2, PF_R=4
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
}

export interface Section {
  name: string;
  addr: number;
  offset: number;
  size: number;
}

export interface ElfImage {
  segments: Segment[];
  sections: Section[];
  /** Dynamic symbols that are defined in this file: name → st_value. */
  symbols: Map<string, number>;
}

export const PT_LOAD = 1;
export const PF_X = 1;

export class ElfError extends Error {}

/** Reads `len` bytes at `offset` of the file (fewer at its end). */
export type ReadAt = (offset: number, len: number) => Uint8Array;

/** Opens an ELF file and reads only the parts needed (headers and dynamic symbols). */
export function readElfFile(path: string): ElfImage {
  const file = Deno.openSync(path);
  try {
    return parseElf((offset, len) => {
      const buf = new Uint8Array(len);
      file.seekSync(offset, Deno.SeekMode.Start);
      let got = 0;
      while (got < len) {
        const n = file.readSync(buf.subarray(got));
        if (n === null || n === 0) break;
        got += n;
      }
      return buf.subarray(0, got);
    });
  } finally {
    file.close();
  }
}

export function parseElf(readAt: ReadAt): ElfImage {
  const head = readAt(0, 64);
  if (
    head.length < 64 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46
  ) {
    throw new ElfError("not an ELF file");
  }
  if (head[4] !== 2 || head[5] !== 1) throw new ElfError("not a 64-bit little-endian ELF file");
  const hv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const phoff = Number(hv.getBigUint64(0x20, true)), shoff = Number(hv.getBigUint64(0x28, true));
  const phentsize = hv.getUint16(0x36, true), phnum = hv.getUint16(0x38, true);
  const shentsize = hv.getUint16(0x3a, true), shnum = hv.getUint16(0x3c, true);
  const shstrndx = hv.getUint16(0x3e, true);
  const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

  const ph = readAt(phoff, phnum * phentsize);
  const pv = view(ph);
  const segments: Segment[] = [];
  for (let i = 0; i < phnum && (i + 1) * phentsize <= ph.length; i++) {
    const o = i * phentsize;
    segments.push({
      type: pv.getUint32(o, true),
      flags: pv.getUint32(o + 4, true),
      offset: Number(pv.getBigUint64(o + 8, true)),
      vaddr: Number(pv.getBigUint64(o + 16, true)),
      filesz: Number(pv.getBigUint64(o + 32, true)),
      memsz: Number(pv.getBigUint64(o + 40, true)),
    });
  }

  const sh = shoff ? readAt(shoff, shnum * shentsize) : new Uint8Array(0);
  const sv = view(sh);
  const raw: {
    nameOff: number;
    type: number;
    addr: number;
    offset: number;
    size: number;
    link: number;
  }[] = [];
  for (let i = 0; i < shnum && (i + 1) * shentsize <= sh.length; i++) {
    const o = i * shentsize;
    raw.push({
      nameOff: sv.getUint32(o, true),
      type: sv.getUint32(o + 4, true),
      addr: Number(sv.getBigUint64(o + 16, true)),
      offset: Number(sv.getBigUint64(o + 24, true)),
      size: Number(sv.getBigUint64(o + 32, true)),
      link: sv.getUint32(o + 40, true),
    });
  }
  const cstr = (table: Uint8Array, off: number) => {
    let end = off;
    while (end < table.length && table[end] !== 0) end++;
    return new TextDecoder().decode(table.subarray(off, end));
  };
  const shstr = raw[shstrndx]
    ? readAt(raw[shstrndx].offset, raw[shstrndx].size)
    : new Uint8Array(0);
  const sections: Section[] = raw.map((s) => ({
    name: cstr(shstr, s.nameOff),
    addr: s.addr,
    offset: s.offset,
    size: s.size,
  }));

  const symbols = new Map<string, number>();
  const SHT_DYNSYM = 11;
  for (const s of raw) {
    if (s.type !== SHT_DYNSYM || !raw[s.link]) continue;
    const syms = readAt(s.offset, s.size);
    const strtab = readAt(raw[s.link].offset, raw[s.link].size);
    const yv = view(syms);
    for (let o = 0; o + 24 <= syms.length; o += 24) {
      const shndx = yv.getUint16(o + 6, true);
      const value = Number(yv.getBigUint64(o + 8, true));
      if (shndx === 0 || value === 0) continue; // undefined here: imported from another object
      symbols.set(cstr(strtab, yv.getUint32(o, true)), value);
    }
  }
  return { segments, sections, symbols };
}

/** The lowest PT_LOAD vaddr, page aligned: what the file's offset-0 mapping corresponds to. */
export function imageBase(elf: ElfImage): number {
  const loads = elf.segments.filter((s) => s.type === PT_LOAD);
  if (!loads.length) throw new ElfError("no loadable segment");
  return Math.min(...loads.map((s) => s.vaddr - (s.offset % 4096)));
}
