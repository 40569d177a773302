// The TUI in a real terminal (tmux) against a real target: choose the process,
// attach, see the worker thread, start a watch and see an observation, quit with
// detach; afterwards the terminal is restored and no agent remains.
import { assert, assertEquals } from "./helpers/assert.ts";
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
import { APP, restored } from "./helpers/observe.ts";

const py = pythons().find((p) => p.version === "3.12") ?? pythons()[0];

function tmux(...args: string[]): string {
  const out = new Deno.Command("tmux", { args }).outputSync();
  if (!out.success) {
    throw new Error(`tmux ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

Deno.test("the TUI: pick, attach, threads, watch, quit with detach, terminal restored", async () => {
  const target = await Target.start(py, "", { script: APP, env: { PEEKA_APP_WORKER: "1" } });
  const session = `peeka-tui-${target.pid}`;
  const env = cliEnv();
  const screen = () => tmux("capture-pane", "-p", "-t", session);
  const see = (what: string | RegExp, ms = 8000) =>
    waitUntil(
      () =>
        Promise.resolve(typeof what === "string" ? screen().includes(what) : what.test(screen())),
      ms,
      `the screen shows ${what}`,
    ).catch((e) => {
      throw new Error(`${e.message}; screen:\n${screen()}`);
    });
  const keys = async (...k: string[]) => {
    for (const key of k) {
      tmux("send-keys", "-t", session, key);
      await sleep(150); // a person's pace: each key is seen by the screen it was meant for
    }
  };
  // One write to the terminal: tmux's paste turns the newline into the Enter key's "\r".
  const paste = (text: string) => {
    tmux("set-buffer", "-b", session, text);
    tmux("paste-buffer", "-d", "-b", session, "-t", session);
  };
  try {
    const vars = Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
    tmux(
      "new-session",
      "-d",
      "-s",
      session,
      "-x",
      "120",
      "-y",
      "30",
      ...vars,
      "bash --norc --noprofile",
    );
    await see(/bash-[\d.]+[#$]/); // typing before the shell is ready can lose the Enter
    await keys(`cd ${REPO} && ${DENO} run -A mod.ts`, "Enter");
    await see("choose a Python process", 60000); // the first run compiles React and Ink
    await keys(String(target.pid));
    await see(new RegExp(`^\\s*${target.pid}\\s+${py.version}`, "m"));
    await keys("Enter");
    await see(/^worker\s+\d+/m); // the threads panel names the worker thread
    assert(screen().includes(`pid ${target.pid}`));
    await keys("2", "w");
    // Pasted: the name, its Enter and more keys reach the TUI in one write (one input chunk).
    // The name is submitted (the watch starts) and what follows is keys again: "/" opens the
    // filter, which gets "#".
    paste("shop.add\n/#");
    await see(/shop\.add #1 [\d.]+ms args=\[\d+,1\] → \d+/);
    await see(/^filter: #/m);
    await keys("Escape");
    await waitUntil(() => Promise.resolve(!/^filter:/m.test(screen())), 4000, "the filter closed");
    tmux("resize-window", "-t", session, "-x", "100", "-y", "20"); // the layout follows the terminal
    await waitUntil(
      () => {
        const rows = screen().replace(/\n$/, "").split("\n");
        const footer = rows.findIndex((l) => /q +quit\s*$/.test(l));
        return Promise.resolve(
          rows.length === 20 && footer >= 16 && rows.every((l) => l.length <= 100),
        );
      },
      4000,
      "the footer at the bottom of a 20-row, 100-column terminal",
    ).catch((e) => {
      throw new Error(`${e.message}; screen:\n${screen()}`);
    });
    await keys("q");
    await see(`Detach from process ${target.pid} before quitting?`);
    await keys("y");
    await see(`Detached from process ${target.pid}`);
    // Back at the shell, the terminal is in its normal mode again (Ink put raw mode back).
    await keys(
      "stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo | tr '\\n' ' '; echo ::done",
      "Enter",
    );
    await see("::done");
    const modes = screen().split("\n").find((l) => l.includes("icanon") && !l.includes("stty")) ??
      "";
    assertEquals(
      modes.trim().replace(" ::done", "").split(" ").sort(),
      ["echo", "icanon"],
      screen(),
    );
    assertEquals(sessionDirOf(target.pid), null, "no agent files remain");
    await restored(target);
    assertEquals(target.errText, "");
  } finally {
    try {
      tmux("kill-session", "-t", session);
    } catch { /* already gone */ }
    await target.stop();
  }
});

Deno.test("peeka with no arguments in a pipe prints help (the TUI needs a terminal)", async () => {
  const r = await cli([], cliEnv());
  assertEquals(r.code, 0);
  assert(r.stdout.includes("Usage: peeka"), r.stdout.slice(0, 200));
  const tui = await cli(["tui"], cliEnv());
  assertEquals([tui.code, tui.lines[0]?.code], [2, "USAGE"]);
});
