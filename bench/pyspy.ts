// py-spy for the side-by-side benches (top_rate.ts, dump): installed from PyPI (a binary wheel)
// into a venv kept across runs, made only when absent, so either bench may come first.
import { pythons } from "../tests/helpers/env.ts";

const VENV = `${Deno.env.get("HOME") ?? "/root"}/.cache/peeka-bench/venv`;
const PY_SPY = `${VENV}/bin/py-spy`;

const exists = (path: string) => {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
};

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** The py-spy executable, installed first if it is not there yet. */
export async function pySpy(): Promise<string> {
  if (exists(PY_SPY)) return PY_SPY;
  if (!exists(`${VENV}/bin/pip`)) {
    const python = pythons().find((p) => p.version === "3.12") ?? pythons()[0];
    await run(python.path, ["-m", "venv", VENV]);
  }
  await run(`${VENV}/bin/pip`, ["install", "--quiet", "py-spy"]);
  return PY_SPY;
}
