// top: which functions the target spends its time in. By default the CLI reads the stacks
// from outside (remote.ts: nothing in the target stops or waits for it); where that cannot
// be set up, the agent samples from inside (snippet.py).
import {
  type CommandContext,
  CommandFailure,
  defineCommand,
  type Options,
  type PeekaCommand,
  UsageError,
} from "../../core/command.ts";
import { printFrame } from "../../core/stream.ts";
import { PeekaError } from "../../process/errors.ts";
import type { AgentClient, Frame } from "../../core/protocol.ts";
import { callCommand, untilInterrupted } from "../../core/call.ts";
import {
  type Collapsed,
  flameGraphSvg,
  foldedText,
  speedscopeJson,
} from "../../core/flamegraph.ts";
import { CalibrationError, type Probe, RemoteStacks } from "./remote.ts";
import { Names, type Row } from "./profile.ts";
import { SamplingRun } from "./sampling.ts";
import { openOutside, verifiedStacks } from "./outside.ts";
import snippet from "./snippet.py" with { type: "text" };

/** "10ms", "2s", "1.5" (in the given unit) → that unit. */
export function parseDuration(text: unknown, unit: "ms" | "s"): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(text).trim());
  if (!m) throw new UsageError(`not a duration: '${text}' (e.g. 10ms, 5s)`);
  const value = Number(m[1]);
  const ms = m[2] === "ms"
    ? value
    : m[2] === "s"
    ? value * 1000
    : m[2] === "m"
    ? value * 60000
    : unit === "ms"
    ? value
    : value * 1000;
  return unit === "ms" ? ms : ms / 1000;
}

/** The table a terminal shows; its head says how many samples were asked and taken. */
export function renderTable(o: Record<string, unknown>): string {
  const rows = o.functions as Row[];
  const taken = o.samples_asked === undefined
    ? ""
    : `, ${o.samples_taken} of ${o.samples_asked} samples taken`;
  // With no agent the target spends nothing on sampling: say how it was read instead.
  const cost = o.agent === false
    ? "read from outside, no agent"
    : `sampling cost ${o.sampling_cpu_ms} ms CPU`;
  const head = `${o.final ? "final" : "top"}: ${o.thread_samples} samples over ${o.seconds}s` +
    ` (${o.idle_skipped} idle skipped${taken}, ${cost})`;
  const lines = [
    head,
    "  %Own  %Total   Own  Total  Function (file:line)",
    ...rows.map((r) =>
      `${r.own_pct.toFixed(1).padStart(6)} ${r.total_pct.toFixed(1).padStart(7)} ${
        String(r.own).padStart(5)
      } ${String(r.total).padStart(6)}  ${r.function} (${r.file}:${r.line})`
    ),
  ];
  return lines.join("\n");
}

const top: PeekaCommand = defineCommand({
  name: "top",
  summary: "Sample the target: the functions with most own and total time (like py-spy top)",
  description: "Samples every thread's stack each interval. Idle threads " +
    "(waiting in sleep, locks, sockets) are left out unless --idle. --flamegraph writes the stacks " +
    "as an SVG flame graph (speedscope JSON with --format speedscope, folded stacks with " +
    "--format collapsed).",
  options: [
    {
      flags: "-i, --interval <time>",
      description: "time between samples, e.g. 10ms",
      default: "10ms",
    },
    {
      flags: "-d, --duration <time>",
      description: "stop after this long, e.g. 5s (default: Ctrl-C)",
    },
    { flags: "--refresh <time>", description: "how often the table is sent", default: "1s" },
    { flags: "--limit <n>", description: "functions shown", type: "int", default: 20 },
    { flags: "--idle", description: "include threads that are waiting" },
    {
      flags: "--flamegraph <file>",
      description: "write the sampled stacks to this file when done",
    },
    {
      flags: "--format <fmt>",
      description: "file format for --flamegraph: svg, speedscope or collapsed (folded stacks)",
      default: "svg",
    },
    {
      flags: "--sampler <how>",
      description: "remote: the CLI reads the stacks from outside, the agent describing the " +
        "target (never stopped); outside: the same with no agent at all, for a stuck or " +
        "unattachable process (as dump reads it); agent: the agent samples from inside (takes " +
        "the GIL each sample); auto: remote where it can be set up, outside when not attached",
      default: "auto",
    },
  ],
  snippet,
  libs: ["threads"],
  streaming: true,
  request,
  run: async (ctx) => {
    const how = String(ctx.opts.sampler);
    if (!["auto", "remote", "outside", "agent"].includes(how)) {
      throw new UsageError(`--sampler must be auto, remote, outside or agent, not '${how}'`);
    }
    const req = request(ctx.opts);
    const agent = how === "outside" ? null : await agentIfAttached(ctx, how === "auto");
    const { interrupted } = await untilInterrupted(async (signal) => {
      if (agent === null) return await sampleOutside(ctx, req, signal);
      if (how !== "agent") {
        const why = await sampleRemotely(ctx, agent, req, signal);
        if (why === null) return;
        if (how === "remote") {
          throw new CommandFailure(
            "REMOTE_READ_FAILED",
            `cannot read process ${ctx.targetPid()}'s stacks from outside (${why}); ` +
              "use --sampler agent",
          );
        }
        if (signal.aborted) return;
        ctx.out.status(`sampling from inside the agent (reading stacks from outside: ${why})`);
      }
      await callCommand(agent, top, { ...req, sampler: "agent" }, {
        onFrame: (f) => showFrame(f, ctx),
        signal,
      });
    });
    return interrupted ? 130 : 0;
  },
  onFrame: (frame, ctx) => showFrame(frame, ctx),
});
export default top;

function request(opts: Options) {
  if (!Object.hasOwn(RENDERERS, String(opts.format))) {
    throw new UsageError(`--format must be svg, speedscope or collapsed, not '${opts.format}'`);
  }
  return {
    interval_ms: parseDuration(opts.interval, "ms"),
    duration: opts.duration === undefined ? null : parseDuration(opts.duration, "s"),
    refresh: parseDuration(opts.refresh, "s"),
    limit: opts.limit as number,
    idle: Boolean(opts.idle),
  };
}

const RENDERERS: Record<string, (stacks: Collapsed, title: string) => string> = {
  svg: flameGraphSvg,
  speedscope: speedscopeJson,
  collapsed: (stacks) => foldedText(stacks),
};

function showFrame(frame: Frame, ctx: CommandContext): void {
  if (frame.type === "profile") {
    const file = ctx.opts.flamegraph as string | undefined;
    if (!file) return;
    const stacks = frame.stacks as Collapsed;
    const title =
      `peeka top: pid ${ctx.targetPid()}, ${frame.samples} samples every ${frame.interval_ms} ms`;
    Deno.writeTextFileSync(file, RENDERERS[String(ctx.opts.format)](stacks, title));
    ctx.out.status(`wrote ${file} (${frame.samples} samples, ${stacks.length} distinct stacks)`, {
      file,
      format: ctx.opts.format,
    });
    return;
  }
  // On a terminal each refresh replaces the previous table, as py-spy top does.
  if (frame.type !== "event" && !frame.final) ctx.out.clearScreen();
  printFrame(frame, ctx, renderTable);
}

/** The target's agent; with `orNone`, null when the process is not attached (a pid given or
 * remembered, but no session): then top samples it with no agent. */
async function agentIfAttached(ctx: CommandContext, orNone: boolean): Promise<AgentClient | null> {
  ctx.targetPid(); // no pid at all stays an error
  try {
    return await ctx.agent();
  } catch (e) {
    if (orNone && e instanceof PeekaError && e.code === "NOT_ATTACHED") return null;
    throw e;
  }
}

/** Samples by reading the target's memory, the agent only parked to describe itself and to
 * send names. Returns null when done, or why it could not start (nothing printed yet). */
async function sampleRemotely(
  ctx: CommandContext,
  agent: AgentClient,
  req: ReturnType<typeof request>,
  interrupt: AbortSignal,
): Promise<string | null> {
  const stop = new AbortController();
  const onInterrupt = () => stop.abort();
  interrupt.addEventListener("abort", onInterrupt);
  const names = new Names();
  const pid = ctx.targetPid();
  let why: string | null = null;
  let sampling: Promise<void> | null = null;
  let calibrating: Promise<void> | null = null;
  let failure: unknown = null;
  let run: SamplingRun | null = null;
  let result: Record<string, unknown>;
  try {
    result = await callCommand(agent, top, { ...req, sampler: "remote" }, {
      signal: stop.signal,
      onFrame: (f) => {
        if (f.event === "top_probe") {
          calibrating = calibrate(pid, (f.data as unknown) as Probe).then((stacks) => {
            run = new SamplingRun(pid, stacks, names, req, "remote", (f) => showFrame(f, ctx));
            sampling = run.run(stop.signal).catch((e) => {
              failure = e;
            }).finally(() => stop.abort()); // over (or a bug): the agent's call ends too
          }, (e) => {
            why = e instanceof Error ? e.message : String(e);
            stop.abort();
          });
        } else if (f.event === "top_names") {
          names.update(f.data as Record<string, unknown>);
        } else {
          showFrame(f, ctx);
        }
      },
    });
  } finally {
    interrupt.removeEventListener("abort", onInterrupt);
  }
  await calibrating;
  if (why !== null || !sampling) return why ?? "the agent sent no description of its stack";
  await sampling;
  if (failure !== null) throw failure;
  (run as SamplingRun | null)!.finish(Number(result.agent_cpu_ms ?? 0));
  return null;
}

/** Samples with no agent (see outside.ts): the target is only read. */
async function sampleOutside(
  ctx: CommandContext,
  req: ReturnType<typeof request>,
  interrupt: AbortSignal,
): Promise<void> {
  const pid = ctx.targetPid();
  const outside = openOutside(pid);
  ctx.out.status(
    `process ${pid} (Python ${outside.version}): stacks read from outside, no agent`,
  );
  const run = new SamplingRun(
    pid,
    outside.stacks,
    outside.names,
    req,
    "outside",
    (f) => showFrame(f, ctx),
  );
  await run.run(interrupt, outside.refreshNames);
  run.finish();
}

/** dump's verified layout where it reads the target; else the layout calibrated from the
 * probe (the agent's thread may not have reached its wait when the probe arrives: a few tries). */
async function calibrate(pid: number, probe: Probe): Promise<RemoteStacks> {
  try {
    return verifiedStacks(pid).stacks;
  } catch {
    // a version or build dump's layouts do not cover: calibrated below
  }
  for (let attempt = 1;; attempt++) {
    try {
      return RemoteStacks.calibrate(pid, probe);
    } catch (e) {
      if (!(e instanceof CalibrationError) || attempt === 5) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
