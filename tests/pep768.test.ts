// Attaching to CPython 3.14+ through PEP 768 from TypeScript: no python3.14
// and no gdb on PATH. Fallback to ptrace for targets where no thread runs
// Python, or where remote debugging is disabled; refusal of foreign memory.
import { assert, assertEquals } from "./helpers/assert.ts";
import { readElfFile } from "../process/elf.ts";
import {
  cli,
  cliEnv,
  type Python,
  pythons,
  REPO,
  sessionDirOf,
  sleep,
  Target,
  waitUntil,
} from "./helpers/env.ts";

const modern = pythons().filter((p) => Number(p.version.split(".")[1]) >= 14);
type Line = {
  type: string;
  message?: string;
  code?: string;
  error?: string;
  data?: Record<string, unknown>;
};

function success(r: { lines: Record<string, unknown>[] }) {
  return (r.lines.find((l) => l.type === "success") as Line | undefined)?.data ?? {};
}
const statuses = (r: { lines: Record<string, unknown>[] }) =>
  (r.lines as Line[]).filter((l) => l.type === "status").map((l) => l.message!);

async function finish(t: Target, env: Record<string, string>, tasks: number) {
  assertEquals((await cli(["thread", "--json"], env)).code, 0);
  assertEquals((await cli(["detach", "--json"], env)).code, 0);
  await waitUntil(() => t.taskCount() === tasks, 3000, "agent threads gone");
  assertEquals(sessionDirOf(t.pid), null);
}

/** The target runs Python again for a while: a request left pending would now run (and print). */
async function assertNothingLeftPending(t: Target) {
  await t.ask();
  await sleep(300);
  const r = await t.ask();
  assertEquals(r.peeka_agent, false);
  assertEquals(t.errText, "");
}

for (const py of modern) {
  Deno.test(`${py.version}: busy target attaches through PEP 768, results unchanged`, async () => {
    const t = await Target.start(py, "busy");
    try {
      const env = cliEnv();
      await t.waitFor((l) => l.startsWith("chunk 1 "));
      const tasks = t.taskCount();
      const a = await cli(["attach", String(t.pid), "--json"], env);
      assertEquals(a.code, 0, a.stderr);
      assertEquals(success(a).mechanism, "pep768");
      // Generous: PEP 768 is taken at the busy thread's next eval-breaker check (~25 ms here);
      // only a request that was never seen (ptrace fallback after the wait) comes near 10 s.
      assert(Number(success(a).elapsed_ms) < 10000, `took ${success(a).elapsed_ms} ms`);
      await finish(t, env, tasks);
      const n = t.lines.filter((l) => l.startsWith("chunk")).length + 2;
      await t.waitFor((l) => l.startsWith(`chunk ${n} `), 20000);
      const ref = await new Deno.Command(py.path, {
        args: [`${REPO}/tests/targets/target.py`, "reference", String(n)],
      }).output();
      assertEquals(
        t.lines.filter((l) => l.startsWith("chunk")).slice(0, n),
        new TextDecoder().decode(ref.stdout).trim().split("\n"),
      );
      assertEquals(t.errText, "");
    } finally {
      await t.stop();
    }
  });

  Deno.test(`${py.version}: web-server shape (main in accept, worker busy) attaches at once through PEP 768`, async () => {
    const t = await Target.start(py, "server");
    try {
      const env = cliEnv();
      const tasks = t.taskCount();
      // A long PEP 768 window: taking the request through the busy worker ends the wait at once,
      // so anything near the window means it waited for the main thread (exact: no fallback).
      const a = await cli(["attach", String(t.pid), "--pep768-timeout", "8000", "--json"], env);
      assertEquals(a.code, 0, a.stderr);
      assertEquals(success(a).mechanism, "pep768");
      assertEquals(statuses(a).length, 1, "no fallback message");
      assert(
        Number(success(a).elapsed_ms) < 8000,
        `took ${success(a).elapsed_ms} ms: it waited for the whole PEP 768 window`,
      );
      await finish(t, env, tasks);
      await assertNothingLeftPending(t);
    } finally {
      await t.stop();
    }
  });

  Deno.test(`${py.version}: quiet target (no thread runs Python) falls back to ptrace; the withdrawn request never runs`, async () => {
    const t = await Target.start(py, "quiet");
    try {
      const env = cliEnv();
      const tasks = t.taskCount();
      const a = await cli(["attach", String(t.pid), "--json"], env);
      assertEquals(a.code, 0, a.stderr);
      assertEquals(success(a).mechanism, "ptrace");
      assert(
        statuses(a).some((m) => /no thread .* ran Python within 300 ms.*ptrace instead/.test(m)),
        statuses(a).join(" | "),
      );
      await finish(t, env, tasks);
      await assertNothingLeftPending(t);
    } finally {
      await t.stop();
    }
  });

  Deno.test(`${py.version}: --via pep768 on a quiet target fails clearly and leaves nothing pending`, async () => {
    const t = await Target.start(py, "quiet");
    try {
      const a = await cli([
        "attach",
        String(t.pid),
        "--via",
        "pep768",
        "--timeout",
        "600",
        "--json",
      ], cliEnv());
      assertEquals(a.code, 1);
      assertEquals((a.lines.find((l) => l.type === "error") as Line).code, "ATTACH_TIMEOUT");
      assertEquals(sessionDirOf(t.pid), null);
      await assertNothingLeftPending(t);
    } finally {
      await t.stop();
    }
  });

  Deno.test(`${py.version}: remote debugging disabled in the target: said clearly, attached with ptrace`, async () => {
    const t = await Target.start(py, "busy", { env: { PYTHON_DISABLE_REMOTE_DEBUG: "1" } });
    try {
      const env = cliEnv();
      const tasks = t.taskCount();
      const a = await cli(["attach", String(t.pid), "--json"], env);
      assertEquals(a.code, 0, a.stderr);
      assertEquals(success(a).mechanism, "ptrace");
      assert(
        statuses(a).some((m) => /remote debugging is disabled/.test(m)),
        statuses(a).join(" | "),
      );
      await finish(t, env, tasks);
      const forced = await cli(["attach", String(t.pid), "--via", "pep768", "--json"], env);
      assertEquals(
        (forced.lines.find((l) => l.type === "error") as Line).code,
        "REMOTE_DEBUG_DISABLED",
      );
      assertEquals(t.errText, "");
    } finally {
      await t.stop();
    }
  });

  Deno.test(`${py.version}: --via ptrace forces the native injector`, async () => {
    const t = await Target.start(py, "busy");
    try {
      const env = cliEnv();
      const a = await cli(["attach", String(t.pid), "--via", "ptrace", "--json"], env);
      assertEquals(a.code, 0, a.stderr);
      assertEquals(success(a).mechanism, "ptrace");
      await finish(t, env, 1);
    } finally {
      await t.stop();
    }
  });

  Deno.test(`${py.version}: a runtime whose debug cookie is wrong is refused before anything is written`, async () => {
    const patched = patchedInterpreter(py);
    const t = await Target.start({ version: py.version, path: patched.launcher }, "busy");
    try {
      const env = cliEnv();
      const forced = await cli(["attach", String(t.pid), "--via", "pep768", "--json"], env);
      const e = forced.lines.find((l) => l.type === "error") as Line;
      assertEquals(e.code, "PEP768_BAD_COOKIE");
      assert(/does not start with the debug cookie.*refusing to write/.test(e.error!), e.error);
      assertEquals(sessionDirOf(t.pid), null, "nothing left behind");
      const a = await cli(["attach", String(t.pid), "--json"], env);
      assertEquals(success(a).mechanism, "ptrace", a.stderr);
      await finish(t, env, 1);
      assertEquals(t.errText, "");
    } finally {
      await t.stop();
      Deno.removeSync(patched.dir, { recursive: true });
    }
  });
}

for (const py of pythons().filter((p) => ["3.8", "3.12", "3.13"].includes(p.version))) {
  Deno.test(`${py.version}: --via pep768 is refused with a clear reason and the target is untouched`, async () => {
    const t = await Target.start(py, "busy");
    try {
      const a = await cli(["attach", String(t.pid), "--via", "pep768", "--json"], cliEnv());
      assertEquals(a.code, 1);
      const e = a.lines.find((l) => l.type === "error") as Line;
      const expected = {
        "3.8": "PEP768_UNAVAILABLE",
        "3.12": "PEP768_BAD_COOKIE",
        "3.13": "PEP768_UNAVAILABLE",
      }[py.version];
      assertEquals(e.code, expected, e.error);
      assert(/no PyRuntime section|debug cookie|needs CPython 3.14/.test(e.error!), e.error);
      assertEquals(t.taskCount(), 1);
      assertEquals(sessionDirOf(t.pid), null, "nothing left behind");
      assertEquals(t.errText, "");
    } finally {
      await t.stop();
    }
  });
}

/** A copy of a Debian-unpacked interpreter whose _PyRuntime starts with a different cookie. */
function patchedInterpreter(py: Python): { dir: string; launcher: string } {
  const launcherText = Deno.readTextFileSync(py.path);
  const binary = /"([^"]*\/usr\/bin\/python3\.\d+)"/.exec(launcherText)![1];
  const dir = Deno.makeTempDirSync({ prefix: "peeka-badcookie-" });
  const bytes = Deno.readFileSync(binary);
  const section = readElfFile(binary).sections.find((s) => s.name === ".PyRuntime")!;
  assertEquals(
    new TextDecoder().decode(bytes.subarray(section.offset, section.offset + 8)),
    "xdebugpy",
  );
  bytes[section.offset + 7] = "z".charCodeAt(0);
  const copy = `${dir}/${binary.split("/").pop()}`;
  Deno.writeFileSync(copy, bytes, { mode: 0o755 });
  const launcher = `${dir}/launcher-${py.version}`;
  Deno.writeTextFileSync(launcher, launcherText.replace(`"${binary}"`, `"${copy}"`), {
    mode: 0o755,
  });
  return { dir, launcher };
}
