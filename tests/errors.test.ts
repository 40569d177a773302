// Every failure has one clear line on stderr, a JSONL error object and a non-zero exit.
import { assert, assertEquals } from "./helpers/assert.ts";
import { cli, cliEnv, DENO, pythons, REPO, sessionDirOf, Target } from "./helpers/env.ts";
import { encodeFrame } from "../core/protocol.ts";

const py = pythons().find((p) => p.version === "3.12") ?? pythons()[0];

function theError(r: { code: number; lines: Record<string, unknown>[]; stderr: string }) {
  assert(r.code !== 0, "non-zero exit");
  const errs = r.lines.filter((l) => l.type === "error");
  assertEquals(errs.length, 1, "one JSONL error");
  const lines = r.stderr.split("\n").filter(Boolean);
  assertEquals(lines.length, 1, `one line on stderr: ${r.stderr}`);
  return errs[0] as { code: string; error: string; command: string };
}

Deno.test("attach to a pid that does not exist", async () => {
  const e = theError(await cli(["attach", "999999999", "--json"]));
  assertEquals(e.code, "NO_SUCH_PROCESS");
  assert(/no process with pid 999999999.*peeka ps/.test(e.error), e.error);
});

Deno.test("attach to a process that is not Python", async () => {
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    const e = theError(await cli(["attach", String(child.pid), "--json"]));
    assertEquals(e.code, "NOT_PYTHON");
    assert(/not a CPython process/.test(e.error), e.error);
  } finally {
    child.kill();
    await child.status;
  }
});

Deno.test("attach to a process already traced by another debugger", async () => {
  const t = await Target.start(py, "idle");
  const tracer = new Deno.Command(DENO, {
    args: ["run", "-A", `${REPO}/tests/helpers/tracer.ts`, String(t.pid)],
    stdout: "piped",
  }).spawn();
  try {
    const reader = tracer.stdout.getReader();
    await reader.read();
    const e = theError(await cli(["attach", String(t.pid), "--json"]));
    assertEquals(e.code, "ALREADY_TRACED");
    assert(/already being traced by pid \d+/.test(e.error), e.error);
    reader.releaseLock();
  } finally {
    tracer.kill("SIGKILL");
    await tracer.status;
    await tracer.stdout.cancel().catch(() => {});
    await t.stop();
  }
});

/** Runs the CLI with a /tmp of its own (a private mount namespace): it sees no session of
 * another peeka on this machine, so what it resolves depends on this test alone. */
const PRIVATE_TMP = [
  "/usr/bin/unshare",
  "--mount",
  "--propagation",
  "private",
  "/bin/sh",
  "-c",
  '/bin/mount -t tmpfs peeka-test-tmp /tmp && exec "$@"',
  "sh",
];

Deno.test("commands without an attached process, bad pid, bad usage", async () => {
  const env = cliEnv();
  const e = theError(await cli(["thread", "--json"], env, undefined, undefined, PRIVATE_TMP));
  assertEquals(e.code, "NOT_ATTACHED");
  assert(/peeka attach <pid>/.test(e.error), e.error);
  const bad = theError(await cli(["attach", "abc", "--json"], env));
  assertEquals(bad.code, "BAD_PID");
  const usage = await cli(["thread", "--depth", "x", "--json"], env);
  assertEquals(usage.code, 2);
  assertEquals((usage.lines[0] as { code: string }).code, "USAGE");
  // a process that is not attached: attach it, or read its stacks from outside
  const t = await Target.start(py, "idle");
  try {
    const alone = theError(await cli(["thread", "--pid", String(t.pid), "--json"], env));
    assertEquals(alone.code, "NOT_ATTACHED");
    assert(alone.error.includes(`peeka dump ${t.pid}`), alone.error);
  } finally {
    await t.stop();
  }
});

Deno.test("a non-root user cannot attach to another user's process", async () => {
  const t = await Target.start(py, "idle");
  const denoDir = Deno.makeTempDirSync({ prefix: "peeka-test-nobody-" });
  try {
    Deno.chmodSync(denoDir, 0o777);
    const r = await cli(
      ["attach", String(t.pid), "--json"],
      { ...cliEnv(), HOME: "/tmp", DENO_DIR: denoDir, PEEKA_STATE_DIR: denoDir },
      undefined,
      undefined,
      ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"],
    );
    assertEquals(r.code, 1, r.stderr);
    const e = r.lines[r.lines.length - 1] as { code: string; error: string };
    assertEquals(e.code, "PERMISSION_DENIED");
    assert(/belongs to uid 0; run peeka as that user or as root/.test(e.error), e.error);
    assertEquals(sessionDirOf(t.pid), null);
  } finally {
    Deno.removeSync(denoDir, { recursive: true });
    await t.stop();
  }
});

Deno.test("attach where ptrace is blocked (a user namespace without CAP_SYS_PTRACE over the target)", async () => {
  const t = await Target.start(py, "idle");
  try {
    const r = await cli(["attach", String(t.pid), "--json"], cliEnv(), undefined, undefined, [
      "/usr/bin/unshare",
      "--user",
      "--map-root-user",
    ]);
    const e = theError(r);
    assertEquals(e.code, "PTRACE_DENIED");
    assert(/ptrace access to process \d+ is denied.*CAP_SYS_PTRACE/.test(e.error), e.error);
    assert(t.alive());
  } finally {
    await t.stop();
  }
});

async function rawFrames(
  socket: string,
  payloads: Uint8Array[],
): Promise<Record<string, unknown>[]> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  const replies: Record<string, unknown>[] = [];
  try {
    for (const p of payloads) await conn.write(p);
    let buf = new Uint8Array(0);
    const chunk = new Uint8Array(65536);
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline && replies.length < payloads.length) {
      const n = await Promise.race([
        conn.read(chunk),
        new Promise<null>((r) => setTimeout(() => r(null), 500)),
      ]);
      if (n === null) break;
      const merged = new Uint8Array(buf.length + n);
      merged.set(buf);
      merged.set(chunk.subarray(0, n), buf.length);
      buf = merged;
      while (buf.length >= 4) {
        const len = new DataView(buf.buffer).getUint32(0);
        if (buf.length < 4 + len) break;
        replies.push(JSON.parse(new TextDecoder().decode(buf.subarray(4, 4 + len))));
        buf = buf.slice(4 + len);
      }
    }
  } finally {
    conn.close();
  }
  return replies;
}

Deno.test("the agent refuses malformed frames, unknown ops and other users, and keeps serving", async () => {
  const t = await Target.start(py, "idle");
  const env = cliEnv();
  try {
    assertEquals((await cli(["attach", String(t.pid), "--json"], env)).code, 0);
    const dir = sessionDirOf(t.pid)!;
    const socket = `${dir}/agent.sock`;
    const text = new TextEncoder();
    const badJson = new Uint8Array([0, 0, 0, 5, ...text.encode("{nope")]);
    const replies = await rawFrames(socket, [
      badJson,
      encodeFrame([1, 2]),
      encodeFrame({ id: 7, op: "launch" }),
    ]);
    assertEquals(replies.map((r) => r.code), ["BAD_FRAME", "BAD_FRAME", "UNKNOWN_OP"]);
    assertEquals(replies[2].id, 7);
    // A length beyond the limit: refused, that connection closed.
    const huge = await rawFrames(socket, [new Uint8Array([0x7f, 0xff, 0xff, 0xff])]);
    assertEquals(huge.map((r) => r.code), ["BAD_FRAME"]);

    // Another uid: the 0700 directory keeps it out; opened up, SO_PEERCRED still does.
    const probe =
      `import socket,struct,json,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1])\nexcept OSError as e:\n print('connect-refused', e.errno); sys.exit()\nd=json.dumps({'id':1,'op':'hello'}).encode()\ntry:\n s.sendall(struct.pack('>I',len(d))+d)\nexcept OSError:\n pass\nh=s.recv(4)\nprint(s.recv(struct.unpack('>I',h)[0]).decode() if len(h)==4 else 'closed')\n`;
    const asNobody = async () => {
      const out = await new Deno.Command("/usr/bin/setpriv", {
        args: [
          "--reuid=nobody",
          "--regid=nogroup",
          "--clear-groups",
          "/usr/bin/python3",
          "-c",
          probe,
          socket,
        ],
        cwd: "/",
      }).output();
      const text = new TextDecoder().decode(out.stdout).trim();
      assert(text, `probe printed nothing: ${new TextDecoder().decode(out.stderr)}`);
      return text;
    };
    assert((await asNobody()).startsWith("connect-refused 13"));
    const parent = dir.slice(0, dir.lastIndexOf("/"));
    try {
      Deno.chmodSync(dir, 0o755);
      Deno.chmodSync(parent, 0o755);
      Deno.chmodSync(socket, 0o777);
      const reply = JSON.parse(await asNobody());
      assertEquals(reply.code, "PERMISSION_DENIED");
    } finally {
      Deno.chmodSync(dir, 0o700);
      Deno.chmodSync(parent, 0o700);
    }

    const th = await cli(["thread", "--json"], env);
    assertEquals(th.code, 0, "still serving after all that");
    assertEquals((await cli(["detach", "--json"], env)).code, 0);
  } finally {
    await t.stop();
  }
});
