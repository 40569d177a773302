// top's sampler reads again only the GIL holder's stack while no other thread has taken the GIL
// (commands/top/gil.ts), keeping the other threads' samples: that must never show a stack a
// thread has left. Against a real target on every interpreter (tests/targets/busy.py, two
// threads spinning and so taking the GIL in turns, one waiting, the main one in accept), each
// sample is followed by a full read of every thread; when the GIL's switch count and holder are
// the same after that full read as before the sample, no other thread can have run in between,
// so the two must agree on every thread but the holder. A GIL watch reading the wrong place (a
// holder and count that never move) keeps a spinning thread's old stack and fails here.
import { assert, assertEquals } from "./helpers/assert.ts";
import { pythons, REPO, Target } from "./helpers/env.ts";
import { PyStateReader } from "../process/pystate.ts";
import { RemoteStacks, type ThreadSample } from "../commands/top/remote.ts";

const ROUNDS = 3000;

/** The threads whose codes differ between two samples of the same threads. */
function differing(a: ThreadSample[], b: ThreadSample[]): number[] {
  const byIdent = new Map(b.map((t) => [t.ident, t.codes.join()]));
  return a.filter((t) => byIdent.get(t.ident) !== t.codes.join()).map((t) => t.ident);
}

for (const py of pythons()) {
  Deno.test(`${py.version}: top keeps only the stacks of threads that have not run`, async () => {
    const target = await Target.start(py, "3:2", { script: `${REPO}/tests/targets/busy.py` });
    try {
      const reader = PyStateReader.open(target.pid);
      reader.read();
      const minor = Number(reader.version.split(".")[1]);
      const watched = RemoteStacks.fromLayout(target.pid, minor, reader.shape);
      const full = RemoteStacks.fromLayout(target.pid, minor, reader.shape, false);
      let compared = 0, kept = 0;
      for (let i = 0; i < ROUNDS; i++) {
        const before = watched.heldOnly;
        const sample = watched.sample();
        const fresh = full.sample();
        const gil = watched.gilNow(), then = watched.gilAtLastSample;
        assert(gil && then, "the GIL's state reads");
        if (watched.heldOnly === before) continue; // read whole: nothing was kept
        kept++;
        if (gil.switches !== then.switches || gil.holder !== then.holder) continue;
        compared++;
        const moved = differing(sample, fresh);
        assert(moved.length <= 1, `threads ${moved} changed though only one held the GIL`);
      }
      assertEquals(watched.sample().length, 4);
      assert(kept > ROUNDS / 10, `only ${kept} samples kept the other threads'`);
      assert(compared > 20, `only ${compared} samples compared`);
    } finally {
      await target.stop();
    }
  });
}
