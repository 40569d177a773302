// The condition evaluator's cost per call against the evaluator before issue 18's bounds
// (bench/condition.py runs both side by side in one interpreter; ratios, as this machine is noisy).
import { type Python, REPO } from "../tests/helpers/env.ts";

/** The last commit before the evaluator was bounded (issue 18): "today's" cost to compare with. */
const BASELINE = "3e86fb6";

export async function benchCondition(py: Python): Promise<string> {
  const old = await new Deno.Command("git", {
    args: ["show", `${BASELINE}:agent/lib/condition.py`],
    cwd: REPO,
  }).output();
  if (old.code !== 0) return `${py.version}: no baseline (git history of ${BASELINE} not here)`;
  const file = Deno.makeTempFileSync({ suffix: ".py" });
  try {
    Deno.writeFileSync(file, old.stdout);
    const out = await new Deno.Command(py.path, {
      args: [`${REPO}/bench/condition.py`, file, `${REPO}/agent/lib/condition.py`, "9"],
    }).output();
    const text = new TextDecoder().decode(out.code === 0 ? out.stdout : out.stderr);
    return text.trimEnd();
  } finally {
    Deno.removeSync(file);
  }
}
