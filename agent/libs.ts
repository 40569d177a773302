// Agent libraries: Python modules shared by command snippets (instrumentation,
// conditions, serialisation), embedded in the program and sent to the agent
// on first use. A snippet reaches them through ctx.agent.lib(name).
import { sha256, type Source } from "./source.ts";
import instrument from "./lib/instrument.py" with { type: "text" };
import condition from "./lib/condition.py" with { type: "text" };
import serialize from "./lib/serialize.py" with { type: "text" };
import observe from "./lib/observe.py" with { type: "text" };
import threads from "./lib/threads.py" with { type: "text" };
import heap from "./lib/heap.py" with { type: "text" };
import classes from "./lib/classes.py" with { type: "text" };

const LIBS: Record<string, string> = {
  instrument,
  condition,
  serialize,
  observe,
  threads,
  heap,
  classes,
};

export async function librarySources(names: string[]): Promise<Record<string, Source>> {
  const out: Record<string, Source> = {};
  for (const name of names) {
    const source = LIBS[name];
    if (source === undefined) throw new Error(`unknown agent library '${name}'`);
    out[name] = { source, hash: await sha256(source) };
  }
  return out;
}
