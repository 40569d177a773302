// Checks the offsets process/pylayouts.ts (and pyobjects.ts) carry for CPython 3.8-3.12, and the
// places inside _Py_DebugOffsets process/debugfields.ts carries for 3.13+, against each
// version's own headers: tools/pylayouts.c is compiled with gcc against the include directory
// every interpreter found by the tests installed (sysconfig's "include"), run, and each field it
// prints compared with the tables. Exits 1 on a mismatch. Needs gcc and the interpreters'
// headers (pyenv installs them; an interpreter without them is said and skipped): a development
// tool, not part of `deno task check`.
//   deno run -A tools/pylayouts.ts
import { PY_LAYOUTS, type PyLayout } from "../process/pylayouts.ts";
import { DEBUG_FIELDS, type DebugFields } from "../process/debugfields.ts";
import { DEBUG_HEAD } from "../process/debugoffsets.ts";
import { FIXED_OFFSETS } from "../process/pyobjects.ts";
import { pythons } from "../tests/helpers/env.ts";

const SOURCE = new URL("./pylayouts.c", import.meta.url).pathname;

/** What the table says for each name tools/pylayouts.c prints (null: not carried). */
function expected(L: PyLayout): Record<string, number | null> {
  const N = L.code.locals;
  const names: Record<string, number> = N.kind === "localsplus"
    ? { "code.localsNames": N.names, "code.localsKinds": N.kinds }
    : { "code.varnames": N.varnames, "code.cellvars": N.cellvars, "code.freevars": N.freevars };
  return {
    interpretersHead: L.interpretersHead,
    threadsHead: L.threadsHead,
    "interp.next": L.interp.next,
    "interp.id": L.interp.id,
    "thread.next": L.thread.next,
    "thread.interp": L.thread.interp,
    "thread.threadId": L.thread.threadId,
    "thread.nativeThreadId": L.thread.nativeThreadId,
    "thread.frame": L.thread.frame,
    "thread.cframeCurrent": L.thread.cframeCurrent,
    "frame.back": L.frame.back,
    "frame.code": L.frame.code,
    "frame.position": L.frame.position,
    "frame.localsplus": L.frame.localsplus,
    "code.filename": L.code.filename,
    "code.name": L.code.name,
    "code.qualname": L.code.qualname,
    "code.firstlineno": L.code.firstlineno,
    "code.linetable": L.code.linetable,
    "code.instructions": L.code.instructions,
    ...names,
    "str.ascii": L.str.ascii,
    "str.compact": L.str.compact,
    "str.length": FIXED_OFFSETS.strLength,
    "str.state": FIXED_OFFSETS.strState,
    bytesData: L.bytesData,
    "bytes.size": FIXED_OFFSETS.bytesSize,
    "gil.offset": L.gil.offset,
    "gil.holder": L.gil.holder,
    "gil.locked": L.gil.locked,
    "gil.own": L.gil.own,
    "object.type": L.objects.obType,
    "object.size": L.objects.varSize,
    "type.name": L.objects.tpName,
    "float.value": L.objects.floatValue,
    "tuple.items": L.objects.tupleItems,
    "dict.used": FIXED_OFFSETS.dictUsed,
    "cell.ref": FIXED_OFFSETS.cellRef,
    "long.tag": L.objects.longTag ? L.objects.longSize : null,
    "long.digits": L.objects.longDigits,
    "long.digitBits": 30,
  };
}

/** 3.13+: DebugFields flattened as tools/pylayouts.c names them ("debug.thread.next"). */
function expectedPlaces(fields: DebugFields): Record<string, number | null> {
  const flat: Record<string, number | null> = {};
  const walk = (prefix: string, value: unknown) => {
    if (typeof value === "number") flat[prefix] = value;
    else for (const [k, v] of Object.entries(value as object)) walk(`${prefix}.${k}`, v);
  };
  walk("debug", fields);
  return {
    ...flat,
    "head.runtime.interpretersHead": DEBUG_HEAD.runtime.interpretersHead,
    "head.interp.id": DEBUG_HEAD.interp.id,
    "head.interp.next": DEBUG_HEAD.interp.next,
    "head.interp.threadsHead": DEBUG_HEAD.interp.threadsHead,
  };
}

function run(cmd: string, args: string[]): string {
  const out = new Deno.Command(cmd, { args, stderr: "piped" }).outputSync();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
  return text;
}

/** The offsets the version's headers give, compiled and printed by tools/pylayouts.c; null
 * when the interpreter did not install its headers. */
function fromHeaders(python: string, version: string): Map<string, number> | null {
  const include = run(python, [
    "-c",
    "import sysconfig; print(sysconfig.get_paths()['include'])",
  ]).trim();
  try {
    Deno.statSync(`${include}/internal`);
  } catch {
    return null;
  }
  const binary = Deno.makeTempFileSync({ prefix: `pylayouts-${version}-` });
  try {
    run("gcc", ["-w", `-I${include}`, `-I${include}/internal`, "-o", binary, SOURCE]);
    const lines = run(binary, []).trim().split("\n").map((l) => l.split(" "));
    return new Map(lines.map(([name, value]) => [name, Number(value)]));
  } finally {
    Deno.removeSync(binary);
  }
}

let failed = false;
for (const { version, path } of pythons()) {
  const layout = PY_LAYOUTS[version];
  const places = DEBUG_FIELDS[version];
  if (!layout && !places) continue;
  const got = fromHeaders(path, version);
  if (!got) {
    console.log(`${version}: no headers installed with ${path}; not checked`);
    continue;
  }
  const want = layout ? expected(layout) : expectedPlaces(places);
  const wrong = [...got].filter(([name, value]) => want[name] !== value);
  const unchecked = Object.keys(want).filter((n) => want[n] !== null && !got.has(n));
  failed ||= wrong.length > 0 || unchecked.length > 0;
  console.log(
    `${version}: ${got.size} fields from the headers; ` +
      (wrong.length
        ? `MISMATCH ${wrong.map(([n, v]) => `${n}: headers ${v}, table ${want[n]}`).join("; ")}`
        : "all match") +
      (unchecked.length ? `; not printed by the headers: ${unchecked.join(", ")}` : ""),
  );
}
if (failed) Deno.exit(1);
