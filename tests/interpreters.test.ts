// Says which interpreters the suite ran on. Every attach test runs once per interpreter found,
// so a missing one would otherwise just mean fewer tests and a green run. The rule (README,
// "Development"): an expected interpreter that is missing fails; one left out on purpose with
// PEEKA_TEST_PYTHONS is an ignored test naming the reason, except on CI (CI=true, set by
// .ci/run), where every expected interpreter must run.
import { EXPECTED_VERSIONS, narrowedTo, type Python, pythons, whereLooked } from "./helpers/env.ts";

const onCI = !["", "0", "false"].includes(Deno.env.get("CI")?.toLowerCase() ?? "");
const listed = narrowedTo();
const chosen = pythons();

function fail(message: string): never {
  throw new Error(message);
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function leftOutTest(version: string) {
  const reason = `PEEKA_TEST_PYTHONS=${listed?.join(",")} leaves it out`;
  Deno.test({
    name: `${version}: not run, ${reason}${onCI ? " (not allowed on CI)" : ""}`,
    ignore: !onCI,
    fn: () => fail(`CI runs every expected interpreter, but ${reason}`),
  });
}

function presentTest(version: string, python: Python | undefined) {
  const path = python && exists(python.path) ? python.path : null;
  const where = python?.path ?? whereLooked(version);
  Deno.test(`${version}: ${path ? `runs on ${path}` : `MISSING (${where})`}`, () => {
    if (!path) {
      fail(
        `CPython ${version} is not there (${where}); install it, ` +
          `or leave it out on purpose with PEEKA_TEST_PYTHONS`,
      );
    }
  });
}

for (const version of EXPECTED_VERSIONS) {
  const python = chosen.find((p) => p.version === version);
  if (listed && !python) leftOutTest(version);
  else presentTest(version, python);
}
// Entries of PEEKA_TEST_PYTHONS beyond the expected versions must still be interpreters.
for (const p of chosen.filter((p) => !EXPECTED_VERSIONS.includes(p.version))) {
  presentTest(p.version, p);
}
