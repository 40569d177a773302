// peeka as root next to a hostile target user: the session directory belongs to the target's
// user, who plants symlinks, hard links and swapped directories there before and during a root
// attach. No file outside it may change (content, owner, mode). Also: attaches racing each
// other, a killed PEP 768 attach, and /tmp full.
import { assert, assertEquals } from "./helpers/assert.ts";
import { startTime } from "../process/procfs.ts";
import { SESSION_FILES } from "../core/session.ts";
import {
  cli,
  cliEnv,
  DENO,
  pythons,
  REPO,
  sessionDirOf,
  sleep,
  Target,
  waitUntil,
} from "./helpers/env.ts";

const NOBODY = 65534;
const isRoot = Deno.uid() === 0;
// The file handling is the CLI's and the same for every version; one ptrace version and one
// PEP 768 version cover both ways a session is made (pep768.py exists only in the second).
const versions = ["3.12", "3.14"].map((v) => pythons().find((p) => p.version === v)).filter(
  (p) => p !== undefined,
);

type Line = Record<string, unknown>;
const errorOf = (r: { lines: Line[] }) => r.lines.find((l) => l.type === "error") as Line;

async function asNobody(script: string, background = false) {
  const cmd = new Deno.Command("setpriv", {
    args: [
      "--reuid",
      String(NOBODY),
      "--regid",
      String(NOBODY),
      "--clear-groups",
      "sh",
      "-c",
      script,
    ],
    stdout: "null",
    stderr: "piped",
  });
  if (background) return cmd.spawn();
  const out = await cmd.output();
  assertEquals(out.code, 0, `as nobody: ${script}: ${new TextDecoder().decode(out.stderr)}`);
  return null;
}

/** A root-owned file or directory nobody can change, remembered so it can be compared later. */
class Victim {
  readonly text = `victim ${crypto.randomUUID()}\n`;
  constructor(readonly path: string, readonly dir: boolean, mode: number) {
    if (dir) Deno.mkdirSync(path);
    else Deno.writeTextFileSync(path, this.text);
    Deno.chmodSync(path, mode);
    this.mode = mode;
  }
  readonly mode: number;

  assertUnchanged(what: string) {
    const st = Deno.lstatSync(this.path);
    assertEquals(st.uid, 0, `${what}: victim owner changed`);
    assertEquals((st.mode ?? 0) & 0o7777, this.mode, `${what}: victim mode changed`);
    if (this.dir) {
      assertEquals(
        [...Deno.readDirSync(this.path)].map((e) => e.name),
        [],
        `${what}: written into`,
      );
    } else {
      assertEquals(Deno.readTextFileSync(this.path), this.text, `${what}: victim content changed`);
    }
  }

  remove() {
    Deno.removeSync(this.path, { recursive: true });
  }
}

function sessionDir(pid: number): string {
  return `/tmp/peeka-${NOBODY}/${pid}-${startTime(pid)}`;
}

/** Back to no session at all for this target (the test runs as root). */
async function clean(pid: number, env: Record<string, string>) {
  if (sessionDirOf(pid)) await cli(["detach", String(pid), "--json"], env);
  try {
    Deno.removeSync(`/tmp/peeka-${NOBODY}`, { recursive: true });
  } catch { /* absent */ }
}

async function attachWorksAndDetaches(pid: number, env: Record<string, string>, what: string) {
  const a = await cli(["attach", String(pid), "--timeout", "5000", "--json"], env);
  assertEquals(a.code, 0, `${what}: ${a.stdout}${a.stderr}`);
  const t = await cli(["thread", "--pid", String(pid), "--json"], env);
  assertEquals(t.code, 0, `${what}: ${t.stdout}${t.stderr}`);
  const d = await cli(["detach", String(pid), "--json"], env);
  assertEquals(d.code, 0, `${what}: ${d.stdout}${d.stderr}`);
}

for (const py of versions) {
  Deno.test({
    name:
      `${py.version}: a target user's symlinks, hard links and swapped folders never turn a root attach against another file`,
    ignore: !isRoot,
    fn: async () => {
      const t = await Target.start(py, "nobody");
      const env = cliEnv();
      const victims: Victim[] = [];
      const victim = (dir = false, mode = 0o644) => {
        const v = new Victim(`/tmp/peeka-victim-${crypto.randomUUID()}`, dir, dir ? 0o700 : mode);
        victims.push(v);
        return v;
      };
      let swapper: Deno.ChildProcess | null = null;
      try {
        const dir = sessionDir(t.pid);
        // Every name peeka uses, planted as a symlink to a root file before root attaches.
        for (const name of SESSION_FILES) {
          const v = victim();
          await asNobody(`umask 077; mkdir -p ${dir} && ln -s ${v.path} ${dir}/${name}`);
          await attachWorksAndDetaches(t.pid, env, `symlink ${name}`);
          v.assertUnchanged(`symlink ${name}`);
          await clean(t.pid, env);
        }
        // Hard links to a root file the target's user may link (0666): writing through the
        // name would change the file and give it to that user.
        for (const name of ["boot.py", "pep768.py"]) {
          const v = victim(false, 0o666);
          await asNobody(`umask 077; mkdir -p ${dir} && ln ${v.path} ${dir}/${name}`);
          await attachWorksAndDetaches(t.pid, env, `hard link ${name}`);
          v.assertUnchanged(`hard link ${name}`);
          await clean(t.pid, env);
        }
        // The per-process folder, and the user's folder itself, as symlinks to a root directory.
        for (const link of [dir, `/tmp/peeka-${NOBODY}`]) {
          const v = victim(true);
          await asNobody(
            `umask 077; mkdir -p /tmp/peeka-${NOBODY}; rm -rf ${link}; ln -s ${v.path} ${link}`,
          );
          const a = await cli(["attach", String(t.pid), "--timeout", "3000", "--json"], env);
          assertEquals(a.code, 1, a.stdout);
          assertEquals(errorOf(a).code, "UNSAFE_SESSION_DIR", a.stdout);
          v.assertUnchanged(`folder symlink ${link}`);
          await clean(t.pid, env);
        }
        assertEquals(t.errText, "", "nothing reached the target's stderr");
        // The folder swapped with a symlink and back, as fast as a shell can, during attaches.
        // (The user sabotages their own process here: a PEP 768 stub looked up while the folder
        // is away is not found, and the interpreter says so on that process's stderr.)
        const v = victim(true);
        await asNobody(`umask 077; mkdir -p ${dir}`);
        swapper = await asNobody(
          `while :; do mv ${dir} ${dir}.x; ln -s ${v.path} ${dir}; rm -f ${dir}; mv ${dir}.x ${dir}; done 2>/dev/null`,
          true,
        );
        for (let i = 0; i < 4; i++) {
          const a = await cli(["attach", String(t.pid), "--timeout", "1500", "--json"], env);
          if (a.code !== 0) {
            assert(
              ["UNSAFE_SESSION_DIR", "ATTACH_TIMEOUT"].includes(String(errorOf(a)?.code)),
              a.stdout + a.stderr,
            );
          }
          await cli(["detach", String(t.pid), "--json"], env);
          v.assertUnchanged(`swapped folder, attach ${i}`);
        }
        swapper!.kill("SIGKILL");
        await swapper!.status;
        swapper = null;
        v.assertUnchanged("swapped folder");
        await sleep(300); // a bootstrap that read boot.py late may still be starting an agent
        await clean(t.pid, env);
        await attachWorksAndDetaches(t.pid, env, "after the attacks");
        for (const x of victims) x.assertUnchanged("at the end");
        const other = t.errText.split("\n").filter((l) =>
          l &&
          !/^(Can't open debugger script|Traceback|\s|\w*Error:)/.test(l)
        );
        assertEquals(other, [], "only the sabotaged stub lookups reached the target's stderr");
      } finally {
        if (swapper) {
          swapper.kill("SIGKILL");
          await swapper.status;
        }
        await clean(t.pid, env);
        await t.stop();
        for (const x of victims) x.remove();
      }
    },
  });

  Deno.test(`${py.version}: two attaches at once, 20 times: both succeed, one agent`, async () => {
    const t = await Target.start(py, "idle");
    const env = cliEnv();
    try {
      const tasks = t.taskCount();
      for (let i = 0; i < 20; i++) {
        const both = await Promise.all(
          [0, 1].map(() => cli(["attach", String(t.pid), "--json"], env)),
        );
        for (const a of both) assertEquals(a.code, 0, `round ${i}: ${a.stdout}${a.stderr}`);
        const reused = both.map((a) =>
          (a.lines.find((l) => l.type === "success")!.data as Line).reused
        );
        assertEquals(reused.sort(), [false, true], `round ${i}: one made the agent, one reused it`);
        const d = await cli(["detach", String(t.pid), "--json"], env);
        assertEquals(d.code, 0, `round ${i}: ${d.stdout}${d.stderr}`);
        assertEquals(sessionDirOf(t.pid), null, `round ${i}: session left`);
      }
      await waitUntil(() => t.taskCount() === tasks, 3000, "every agent thread has exited");
      assertEquals((await t.ask()).peeka_agent, false);
      assertEquals(t.errText, "");
    } finally {
      await t.stop();
    }
  });
}

for (const py of pythons().filter((p) => ["3.14", "3.15"].includes(p.version))) {
  Deno.test(`${py.version}: PEP 768 attach killed at 60-150 ms: later attaches withdraw what it left, nothing reaches the target's stderr`, async () => {
    const t = await Target.start(py, "idle"); // the main thread waits in accept(): a request to it stays pending
    const env = cliEnv();
    try {
      for (let i = 0; i < 8; i++) {
        const child = new Deno.Command(DENO, {
          args: ["run", "-A", `${REPO}/mod.ts`, "attach", String(t.pid), "--json"],
          env,
          clearEnv: true,
          cwd: REPO,
          stdout: "null",
          stderr: "null",
        }).spawn();
        await sleep(60 + (i * 13) % 90);
        try {
          child.kill("SIGKILL");
        } catch { /* finished first */ }
        await child.status;
        await attachWorksAndDetaches(t.pid, env, `after kill ${i}`);
      }
      // Wake the main thread: a request left in it would now run a stub that no longer exists.
      await t.ask();
      await sleep(300);
      assertEquals((await t.ask()).peeka_agent, false);
      assertEquals(t.errText, "");
    } finally {
      await t.stop();
    }
  });
}

Deno.test({
  name: "/tmp full: attach says so and leaves no partial session; with space again it works",
  ignore: !isRoot || !versions.length,
  fn: async () => {
    const py = versions[0]!;
    // A private mount namespace with a 1 MiB /tmp, shared by the target and the CLI.
    const script = `
      set -e
      export PATH=/usr/sbin:/usr/bin:/sbin:/bin
      # the CLI itself runs with no gdb reachable, as everywhere in the suite
      peeka() { PATH=/nonexistent-no-gdb-here ${DENO} run -A ${REPO}/mod.ts "$@"; }
      mount -t tmpfs -o size=1m tmpfs /tmp
      ${py.path} -u ${REPO}/tests/targets/target.py idle >/dev/null 2>/dev/null &
      target=$!
      for i in $(seq 100); do [ -d /proc/$target/task ] && [ $(ls /proc/$target/task | wc -l) -ge 2 ] && break; sleep 0.05; done
      sleep 0.3
      dd if=/dev/zero of=/tmp/fill bs=4k 2>/dev/null || true
      echo "FULL $(peeka attach $target --json 2>/dev/null | tail -1)"
      echo "LEFT $(ls /tmp/peeka-0 2>/dev/null | tr '\\n' ' ')"
      rm -f /tmp/fill
      echo "AGAIN $(peeka attach $target --json 2>/dev/null | tail -1)"
      echo "DETACH $(peeka detach $target --json 2>/dev/null | tail -1)"
      kill -9 $target
    `;
    const out = await new Deno.Command("/usr/bin/unshare", {
      args: ["--mount", "--propagation", "private", "/bin/sh", "-c", script],
      env: cliEnv(),
      clearEnv: true,
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    const line = (tag: string) => {
      const l = text.split("\n").find((x) => x.startsWith(tag + " "));
      assert(l, `${tag} missing: ${text} ${new TextDecoder().decode(out.stderr)}`);
      return l.slice(tag.length + 1);
    };
    const full = JSON.parse(line("FULL"));
    assertEquals(full.code, "NO_SPACE", line("FULL"));
    assert(/no space left in \/tmp/.test(full.error), full.error);
    assertEquals(line("LEFT").trim(), "", "no partial session folder left");
    assertEquals(JSON.parse(line("AGAIN")).type, "success", line("AGAIN"));
    assertEquals(JSON.parse(line("DETACH")).type, "success", line("DETACH"));
  },
});

Deno.test({
  name: "attach to a zombie or a stopped process says which, at once",
  ignore: !versions.length,
  fn: async () => {
    const py = versions[0]!;
    // A Python child that exits and is never collected: a zombie whose parent sleeps.
    const parent = new Deno.Command(py.path, {
      args: [
        "-c",
        "import os, sys, time\npid = os.fork()\nif pid == 0:\n    os._exit(0)\nprint(pid, flush=True)\ntime.sleep(30)\n",
      ],
      stdout: "piped",
    }).spawn();
    const t = await Target.start(py, "idle");
    const env = cliEnv();
    try {
      const reader = parent.stdout.getReader();
      const zombie = Number(new TextDecoder().decode((await reader.read()).value).trim());
      reader.releaseLock();
      await waitUntil(
        () => Deno.readTextFileSync(`/proc/${zombie}/stat`).includes(") Z "),
        5000,
        "a zombie",
      );
      const z = await cli(["attach", String(zombie), "--json"], env);
      assertEquals([z.code, errorOf(z).code], [1, "TARGET_EXITED"], z.stdout);
      assert(/zombie/.test(String(errorOf(z).error)), z.stdout);

      Deno.kill(t.pid, "SIGSTOP");
      await waitUntil(() => t.state() === "T", 5000, "stopped");
      const s = await cli(["attach", String(t.pid), "--json"], env);
      assertEquals([s.code, errorOf(s).code], [1, "TARGET_STOPPED"], s.stdout);
      assert(String(errorOf(s).error).includes(`kill -CONT ${t.pid}`), s.stdout);
      assertEquals(sessionDirOf(t.pid), null, "nothing made for a stopped target");
    } finally {
      Deno.kill(t.pid, "SIGCONT");
      parent.kill("SIGKILL");
      await parent.stdout.cancel().catch(() => {});
      await parent.status;
      await t.stop();
    }
  },
});

Deno.test({
  name: "a thread name with terminal escapes is shown escaped on a terminal, never sent raw",
  ignore: !versions.length,
  fn: async () => {
    const py = versions[0]!;
    const evil = "evil\x1b]0;owned\x07\x1b[2J\u202eman";
    const t = await Target.start(py, "idle", { env: { TARGET_THREAD_NAME: evil } });
    const env = cliEnv();
    try {
      assertEquals((await cli(["attach", String(t.pid), "--json"], env)).code, 0);
      // `script` gives the CLI a terminal, so it prints its human text.
      const out = await new Deno.Command("/usr/bin/script", {
        args: ["-qec", `${DENO} run -A ${REPO}/mod.ts thread --pid ${t.pid}`, "/dev/null"],
        env,
        clearEnv: true,
        cwd: REPO,
        stdout: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assertEquals(out.code, 0, text);
      assert(text.includes("evil\\x1b]0;owned\\x07\\x1b[2J\\u202eman"), text);
      assert(
        !text.includes("\x1b]0;owned") && !text.includes("\u202e"),
        "raw escapes reached the terminal",
      );
      const json = await cli(["thread", "--pid", String(t.pid), "--json"], env);
      assert(
        json.stdout.includes("\\u001b]0;owned\\u0007") && json.stdout.includes("\\u202e"),
        json.stdout,
      );
      const names = (json.lines[0].data as { threads: { name: string }[] }).threads.map((x) =>
        x.name
      );
      assert(names.includes(evil), "the JSON still carries the exact name");
      assertEquals((await cli(["detach", String(t.pid), "--json"], env)).code, 0);
    } finally {
      await t.stop();
    }
  },
});
