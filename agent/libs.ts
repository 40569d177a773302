// Agent libraries: Python modules shared by command snippets (instrumentation,
// conditions, serialisation), embedded in the program and sent to the agent
// on first use. A snippet reaches them through ctx.agent.lib(name); a library names the ones it
// uses in REQUIRES.
import { pythonSource, type Source } from "./source.ts";
import instrument from "./lib/instrument.py" with { type: "text" };
import condition from "./lib/condition.py" with { type: "text" };
import serialize from "./lib/serialize.py" with { type: "text" };
import observe from "./lib/observe.py" with { type: "text" };
import threads from "./lib/threads.py" with { type: "text" };
import heap from "./lib/heap.py" with { type: "text" };
import classes from "./lib/classes.py" with { type: "text" };
import aio from "./lib/aio.py" with { type: "text" };
import greenlets from "./lib/greenlets.py" with { type: "text" };
import reflect from "./lib/reflect.py" with { type: "text" };
import names from "./lib/names.py" with { type: "text" };
import tunnel from "./lib/tunnel.py" with { type: "text" };
import referrers from "./lib/referrers.py" with { type: "text" };
import codes from "./lib/codes.py" with { type: "text" };

const LIBS: Record<string, string> = {
  instrument,
  condition,
  serialize,
  observe,
  threads,
  heap,
  classes,
  reflect,
  names,
  aio,
  greenlets,
  tunnel,
  referrers,
  codes,
};

/** Libraries the agent has built in, required without sending: `errors` (CommandError) and
 * `real` (the interpreter's own threads, locks and sleep, even under gevent or eventlet). */
const BUILT_IN = new Set(["errors", "real"]);

/** The libraries `names` and those they require, each after the ones it requires (the agent
 * binds a library's requirements when it loads it, so they must be there first). */
export async function librarySources(names: string[]): Promise<Record<string, Source>> {
  const out: Record<string, Source> = {};
  const visit = async (name: string, requiredBy: string[]): Promise<void> => {
    if (BUILT_IN.has(name) || name in out) return;
    if (requiredBy.includes(name)) {
      throw new Error(`agent libraries require each other: ${[...requiredBy, name].join(" -> ")}`);
    }
    const source = LIBS[name];
    if (source === undefined) throw new Error(`unknown agent library '${name}'`);
    const lib = await pythonSource(source);
    for (const required of lib.requires ?? []) await visit(required, [...requiredBy, name]);
    out[name] = lib;
  };
  for (const name of names) await visit(name, []);
  return out;
}
