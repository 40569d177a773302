// The PyPI frameworks (uvicorn, FastAPI, gunicorn, gevent, Flask) provisioned per interpreter by
// tests/frameworks/provision.sh (.ci/run calls it). A framework test asks for the environment of
// its interpreter; when it is missing the test fails with what to run (never a silent pass).
import { type Python, REPO } from "./env.ts";

const HOME = Deno.env.get("HOME") ?? "/root";
export const FRAMEWORKS_ROOT = Deno.env.get("PEEKA_FRAMEWORKS") ??
  `${HOME}/.cache/peeka-frameworks`;

/** How to start a framework process on one interpreter: the program and its environment. */
export interface FrameworkPython {
  python: Python; // the interpreter to launch (a venv's python, or the base one with PYTHONPATH)
  env: Record<string, string>;
  bin: string; // folder with console scripts (gunicorn, uvicorn) when there is one
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The framework environment of `python`; throws with the command that builds it when absent. */
export function frameworkPython(python: Python): FrameworkPython {
  const dir = `${FRAMEWORKS_ROOT}/${python.version}`;
  if (!exists(`${dir}/ok`)) {
    throw new Error(
      `no framework environment for ${python.version} in ${dir}; run tests/frameworks/provision.sh`,
    );
  }
  const venvPython = `${dir}/bin/python${python.version}`;
  if (exists(venvPython)) {
    return { python: { ...python, path: venvPython }, env: {}, bin: `${dir}/bin` };
  }
  return { python, env: { PYTHONPATH: `${dir}/site` }, bin: `${dir}/site/bin` };
}

export const FRAMEWORK_TARGETS = `${REPO}/tests/targets/frameworks`;
