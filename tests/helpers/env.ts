// Shared test plumbing: the interpreters on this machine, real target
// processes, and the CLI run as a real subprocess (with no gdb on PATH).

export const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
export const TARGET_SCRIPT = `${REPO}/tests/targets/target.py`;
const HOME = Deno.env.get("HOME") ?? "/root";

export interface Python {
  version: string; // "3.12"
  path: string;
}

function newestPatch(minor: string): string | null {
  try {
    const dirs = [...Deno.readDirSync(`${HOME}/.pyenv/versions`)]
      .map((e) => e.name)
      .filter((n) => n.startsWith(minor + ".") && /^\d+\.\d+\.\d+$/.test(n))
      .sort((a, b) => Number(a.split(".")[2]) - Number(b.split(".")[2]));
    return dirs.length
      ? `${HOME}/.pyenv/versions/${dirs[dirs.length - 1]}/bin/python${minor}`
      : null;
  } catch {
    return null;
  }
}

/** The interpreters the suite runs on: pyenv's 3.8-3.13, Debian's 3.14/3.15 (.ci/run unpacks them). */
export const EXPECTED_VERSIONS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"];

/** Where an expected interpreter is looked for, as said when it is missing. */
export function whereLooked(minor: string): string {
  return pyenvMinor(minor)
    ? `${HOME}/.pyenv/versions/${minor}.*`
    : `${HOME}/.cache/debian-python/${minor} (../shared/tools/debian-python ${minor})`;
}

const pyenvMinor = (minor: string) => Number(minor.split(".")[1]) <= 13;

/** The interpreter of one expected version on this machine, or null. */
export function findPython(minor: string): string | null {
  if (pyenvMinor(minor)) return newestPatch(minor);
  const p = `${HOME}/.cache/debian-python/${minor}/bin/python${minor}`;
  try {
    Deno.statSync(p);
    return p;
  } catch {
    return null; // not provisioned
  }
}

/** PEEKA_TEST_PYTHONS's entries (versions or interpreter paths), or null when it is not set. */
export function narrowedTo(): string[] | null {
  return Deno.env.get("PEEKA_TEST_PYTHONS")?.split(/[,:]/).filter(Boolean) ?? null;
}

/** Every expected CPython the machine has. PEEKA_TEST_PYTHONS narrows it: versions
 * ("3.8,3.12") or interpreter paths. What is missing is said by tests/interpreters.test.ts. */
export function pythons(): Python[] {
  const listed = narrowedTo();
  const all = everyPython();
  if (!listed) return all;
  return listed.map((entry) =>
    all.find((p) => p.version === entry) ?? {
      version: /python(\d+\.\d+)/.exec(entry)?.[1] ?? entry,
      path: entry,
    }
  );
}

function everyPython(): Python[] {
  return EXPECTED_VERSIONS.flatMap((version) => {
    const path = findPython(version);
    return path ? [{ version, path }] : [];
  });
}

/** A running target process whose stdout lines are collected. */
export class Target {
  lines: string[] = [];
  /** Everything the target wrote to its stderr (must stay empty: peeka never writes there). */
  errText = "";
  port = 0;
  private done: Promise<unknown>;
  private constructor(readonly child: Deno.ChildProcess, readonly python: Python) {
    this.done = Promise.all([this.collect(), this.collectErr()]);
  }

  get pid(): number {
    return this.child.pid;
  }

  static async start(
    python: Python,
    shape: string,
    opts: { env?: Record<string, string>; script?: string } = {},
  ): Promise<Target> {
    const cmd = new Deno.Command(python.path, {
      args: ["-u", opts.script ?? TARGET_SCRIPT, ...(shape ? [shape] : [])],
      stdout: "piped",
      stderr: "piped",
      cwd: "/tmp",
      env: opts.env,
    });
    const t = new Target(cmd.spawn(), python);
    const ready = await t.waitFor((l) => l.startsWith("ready"), 15000);
    t.port = Number(ready.split(" ")[2]);
    return t;
  }

  private async collect(): Promise<void> {
    let rest = "";
    for await (const chunk of this.child.stdout.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      this.lines.push(...parts);
    }
  }

  private async collectErr(): Promise<void> {
    for await (const chunk of this.child.stderr.pipeThrough(new TextDecoderStream())) {
      this.errText += chunk;
    }
  }

  async waitFor(pred: (line: string) => boolean, timeoutMs = 10000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let seen = 0;
    while (Date.now() < deadline) {
      for (; seen < this.lines.length; seen++) if (pred(this.lines[seen])) return this.lines[seen];
      await sleep(5);
    }
    throw new Error(
      `target ${this.pid} (${this.python.version}) never printed the expected line; got: ${
        this.lines.slice(-5).join(" | ")
      }`,
    );
  }

  /** Talks to the target's own accept() loop. */
  async ask(cmd = "report"): Promise<Record<string, unknown>> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
    try {
      await conn.write(new TextEncoder().encode(cmd + "\n"));
      let text = "";
      const buf = new Uint8Array(65536);
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
      }
      return text.trim() === "ok" ? { ok: true } : JSON.parse(text);
    } finally {
      conn.close();
    }
  }

  alive(): boolean {
    try {
      const stat = Deno.readTextFileSync(`/proc/${this.pid}/stat`);
      const state = stat.slice(stat.lastIndexOf(")") + 2)[0];
      return state !== "Z" && state !== "X";
    } catch {
      return false;
    }
  }

  /** Kernel-level state: R/S/D, or t/T when stopped (which must never persist). */
  state(): string {
    const stat = Deno.readTextFileSync(`/proc/${this.pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0];
  }

  taskCount(): number {
    return [...Deno.readDirSync(`/proc/${this.pid}/task`)].length;
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch { /* gone */ }
    await this.child.status;
    await this.done;
  }
}

export interface CliResult {
  code: number;
  lines: Record<string, unknown>[];
  stdout: string;
  stderr: string;
  ms: number;
}

export const DENO = Deno.execPath();

/** State folders made for the CLI in this test process, removed when it ends. */
const stateDirs: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const dir of stateDirs) {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* gone */ }
  }
});

/** Environment for the CLI: no gdb anywhere on PATH, a private session state dir. */
export function cliEnv(extra: Record<string, string> = {}): Record<string, string> {
  const state = Deno.makeTempDirSync({ prefix: "peeka-state-" });
  stateDirs.push(state);
  return {
    PATH: "/nonexistent-no-gdb-here",
    HOME: Deno.env.get("HOME") ?? "/root",
    PEEKA_STATE_DIR: state,
    NO_COLOR: "1",
    ...extra,
  };
}

/** Runs the CLI to its end; `wrap` runs it under another program (setpriv, unshare...). */
export async function cli(
  args: string[],
  env = cliEnv(),
  entry = `${REPO}/mod.ts`,
  cwd = REPO,
  wrap: string[] = [],
): Promise<CliResult> {
  const t0 = performance.now();
  const [program, ...before] = [...wrap, DENO];
  const out = await new Deno.Command(program, {
    args: [...before, "run", "-A", entry, ...args],
    env,
    clearEnv: true,
    cwd,
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const lines = stdout.split("\n").filter((l) => l.trim()).map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return { unparsed: l };
    }
  });
  return {
    code: out.code,
    lines,
    stdout,
    stderr: new TextDecoder().decode(out.stderr),
    ms: performance.now() - t0,
  };
}

export async function waitUntil(pred: () => boolean | Promise<boolean>, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting until ${what}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function sessionDirOf(pid: number): string | null {
  try {
    for (const base of Deno.readDirSync("/tmp")) {
      if (!base.name.startsWith("peeka-")) continue;
      for (const e of Deno.readDirSync(`/tmp/${base.name}`)) {
        if (e.name.startsWith(`${pid}-`)) return `/tmp/${base.name}/${e.name}`;
      }
    }
  } catch { /* none */ }
  return null;
}

/** A CLI process that streams (watch, monitor...): its JSON lines are collected as they come. */
export class StreamingCli {
  lines: Record<string, unknown>[] = [];
  stderr = "";
  readonly done: Promise<number>;
  private child: Deno.ChildProcess;

  constructor(args: string[], env: Record<string, string>) {
    this.child = new Deno.Command(DENO, {
      args: ["run", "-A", `${REPO}/mod.ts`, ...args, "--json"],
      env,
      clearEnv: true,
      cwd: REPO,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.done = Promise.all([this.collect(), this.collectErr()]).then(() => this.child.status).then(
      (s) => s.code,
    );
  }

  private async collect() {
    let rest = "";
    for await (const chunk of this.child.stdout.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      for (const p of parts) if (p.trim()) this.lines.push(JSON.parse(p));
    }
  }

  private async collectErr() {
    for await (const chunk of this.child.stderr.pipeThrough(new TextDecoderStream())) {
      this.stderr += chunk;
    }
  }

  async waitFor(
    pred: (l: Record<string, unknown>) => boolean,
    ms = 10000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const hit = this.lines.find(pred);
      if (hit) return hit;
      await sleep(10);
    }
    throw new Error(
      `expected line never came; got ${JSON.stringify(this.lines).slice(-500)} ${this.stderr}`,
    );
  }

  kill(sig: Deno.Signal): void {
    try {
      this.child.kill(sig);
    } catch { /* exited */ }
  }

  observations(): Record<string, unknown>[] {
    return this.lines.filter((l) => l.type === "observation");
  }
}

/** `deno bundle` of mod.ts, copied alone into `work`/empty (as a compiled peeka would sit on a
 * server); returns the bundle's path. */
export async function bundleAlone(work: string): Promise<string> {
  const built = await new Deno.Command(DENO, {
    args: ["bundle", "--platform", "deno", "-o", `${work}/build/peeka.js`, `${REPO}/mod.ts`],
    cwd: REPO,
  }).output();
  if (built.code !== 0) throw new Error(new TextDecoder().decode(built.stderr));
  Deno.mkdirSync(`${work}/empty`);
  Deno.copyFileSync(`${work}/build/peeka.js`, `${work}/empty/peeka.js`);
  return `${work}/empty/peeka.js`;
}
