// demo: the main job end to end on a sample service — attach, watch with a condition, trace a
// request down to its slow child, reset a watch left running, detach — each step announced as
// the command line a user would type, then run through the same command line parser and runner
// as that command line (core/cli.ts), so its output is the real one.
import { defineCommand, type Registry } from "../../core/command.ts";
import { buildProgram } from "../../core/cli.ts";
import { untilInterrupted } from "../../core/call.ts";
import type { Output } from "../../core/output.ts";
import { hasSocket, rememberedPid, rememberSession, sessionPaths } from "../../core/session.ts";
import { DemoService, findPython } from "./service.ts";
import { untilWatched } from "./watched.ts";

/** How long the watch left running is shown before `reset` takes it out (it sees a call every
 * ~130 ms). */
const LEFT_RUNNING_MS = 400;

/** One step: the command line (without `peeka`) and what it shows, said after it as a comment. */
interface Step {
  argv: string[];
  note: string;
}

const quoted = (arg: string) => /^[\w./=:,-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;

/** Says the step as the line a user would type, e.g. `$ peeka trace shop.handle_request -n 1`. */
function announce(out: Output, step: Step): void {
  const line = `$ peeka ${step.argv.map(quoted).join(" ")}`;
  if (out.json) {
    out.status(line, { command: "demo", step: step.argv[0], argv: step.argv, note: step.note });
  } else out.status(`\n${line}    # ${step.note}`);
}

/** Runs one command line through the CLI's own parser and runner; returns its exit status. */
async function runCommandLine(registry: Registry, argv: string[], json: boolean): Promise<number> {
  let status = 0;
  const program = buildProgram(registry, "peeka", (code) => (status = code));
  await program.parseAsync(json ? [...argv, "--json"] : argv, { from: "user" });
  return status;
}

/** A step left running: its end, once it is in place; else the status the demo ends with. */
type LeftRunning = { ended: Promise<number> } | { status: number };

/** The demo's steps, run in order until one fails or Ctrl-C comes; its exit status. */
async function tour(
  pid: number,
  run: (step: Step) => Promise<number>,
  leaveRunning: (step: Step) => Promise<LeftRunning>,
): Promise<number> {
  const p = String(pid);
  const steps: Step[] = [
    { argv: ["attach", p], note: "the agent goes in: no restart, no code change" },
    {
      argv: [
        "watch",
        "shop.OrderBook.add",
        "--condition",
        "qty * price > 25",
        "-n",
        "3",
        "--pid",
        p,
      ],
      note: "calls that book more than 25, three of them",
    },
    {
      argv: ["trace", "shop.handle_request", "-n", "1", "--pid", p],
      note: "one request's call tree: where its time goes",
    },
  ];
  for (const step of steps) {
    const status = await run(step);
    if (status !== 0) return status;
  }
  const running = await leaveRunning({
    argv: ["watch", "shop.quote_shipping", "--pid", p],
    note: "left running, as in a second terminal",
  });
  if ("status" in running) return running.status;
  const reset = await run({
    argv: ["reset", "shop.quote_shipping", "--pid", p],
    note: "takes the watch out: its stream ends",
  });
  if (reset !== 0) return reset; // the watch still runs: the cleanup's detach ends it
  const watched = await running.ended;
  if (watched !== 0) return watched;
  return await run({ argv: ["detach", p], note: "everything restored, the agent gone" });
}

/** Runs the demo's steps on one service until Ctrl-C (`signal`). */
class Steps {
  constructor(
    private out: Output,
    private registry: Registry,
    private pid: number,
    private signal: AbortSignal,
  ) {}

  /** Announces and runs a step; its exit status (130 once Ctrl-C came). */
  async run(step: Step): Promise<number> {
    if (this.signal.aborted) return 130;
    announce(this.out, step);
    return await runCommandLine(this.registry, step.argv, this.out.json);
  }

  /** Starts a watch that keeps running and waits until it is in place, then lets it show a few
   * calls; its end (after `reset`), or the status to stop with. */
  async leaveRunning(step: Step): Promise<LeftRunning> {
    announce(this.out, step);
    const ended = runCommandLine(this.registry, step.argv, this.out.json);
    const pattern = step.argv[1];
    switch (await untilWatched(this.pid, this.registry, pattern, ended, this.signal)) {
      case "armed":
        await new Promise((r) => setTimeout(r, LEFT_RUNNING_MS));
        return { ended };
      case "ended": // it said why
        return { status: (await ended) || 1 };
      case "aborted":
        return { status: 130 };
      case "timeout":
        this.out.error("demo", `the watch of ${pattern} was not in place within 10 s`, {
          code: "DEMO_STEP_FAILED",
          pid: this.pid,
        });
        return { status: 1 };
    }
  }
}

export default defineCommand({
  name: "demo",
  summary: "Run the whole flow on a sample service",
  description:
    "Start a small sample Python service (a shop: a request handler with a slow child, a worker " +
    "thread), then attach, watch with a condition, trace a request, reset a running watch and " +
    "detach, showing each command line and its output; the service is stopped at the end.",
  options: [{
    flags: "--python <path>",
    description: "interpreter for the sample service (default: python3 on PATH)",
  }],
  needsTarget: false,
  async run({ out, opts, registry }) {
    const python = findPython(opts.python as string | undefined);
    const remembered = rememberedPid(); // `peeka attach` in the demo replaces it for a while
    const service = await DemoService.start(python);
    out.status(
      `Started the demo service (pid=${service.pid}, ${python}): a shop whose handle_request ` +
        "calls a slow quote_shipping; a worker books orders, a client sends a request every 100 ms",
      { pid: service.pid, folder: service.folder },
    );
    try {
      const { value, interrupted } = await untilInterrupted((signal) => {
        const steps = new Steps(out, registry, service.pid, signal);
        return tour(service.pid, (s) => steps.run(s), (s) => steps.leaveRunning(s));
      });
      return interrupted ? 130 : value;
    } finally {
      if (hasSocket(sessionPaths(service.pid))) {
        // A step failed or Ctrl-C came while attached: the target is put back as detach does.
        const detach = ["detach", String(service.pid)];
        announce(out, { argv: detach, note: "cleaning up" });
        await runCommandLine(registry, detach, out.json);
      }
      await service.stop();
      if (remembered !== null && rememberedPid() === null) rememberSession(remembered);
      out.status("Stopped the demo service", { pid: service.pid });
    }
  },
});
