// top at high rates, side by side with py-spy record --nonblocking: samples asked vs taken and
// the target's slowdown (its own work rate with the sampler running / without) at 100 Hz,
// 1 kHz and 5 kHz, for a target with 1 thread and with 50 (one busy, 49 waiting; tests/targets/
// busy.py). Last, the ratios top/py-spy in the same run: samples taken, and the target's speed
// (above 1: top slowed it less).
// Run alone: deno run -A bench/top_rate.ts [python version, default 3.12]
import {
  cli,
  cliEnv,
  type Python,
  pythons,
  REPO,
  StreamingCli,
  Target,
} from "../tests/helpers/env.ts";
import { pySpy } from "./pyspy.ts";

const SECONDS = Number(Deno.env.get("PEEKA_BENCH_TOP_SECONDS") ?? 6);
const RATES = [100, 1000, 5000];
const THREADS = [1, 50];

interface Run {
  asked: number;
  taken: number;
  /** The target's work rate while sampled, over its rate just before. */
  speed: number;
}

/** The target's calls per second over the middle of the window (the samplers start and stop).
 * Its rate unsampled is the mean of the windows just before and just after (the machine is
 * shared: its load drifts). */
const workRate = async (t: Target, seconds: number) =>
  Number((await t.ask(`rate ${seconds}`)).per_s);

async function withPeeka(t: Target, env: Record<string, string>, hz: number): Promise<Run> {
  const base = await workRate(t, SECONDS - 2);
  const top = new StreamingCli(
    ["top", "--pid", String(t.pid), "-i", `${1000 / hz}ms`, "-d", String(SECONDS)],
    env,
  );
  await top.waitFor((l) => l.event === "top_started" || l.type === "error", 30000);
  const sampled = await workRate(t, SECONDS - 2);
  await top.done;
  const after = await workRate(t, SECONDS - 2);
  const end = top.lines.find((l) => l.event === "top_stopped")?.data as Record<string, number>;
  if (!end) throw new Error(`top failed: ${top.stderr} ${JSON.stringify(top.lines.slice(-3))}`);
  return {
    asked: end.samples_asked,
    taken: end.samples_taken,
    speed: 2 * sampled / (base + after),
  };
}

/** py-spy's -d counts samples, not time (behind, it runs on): it is stopped by Ctrl-C after
 * the window instead, and asked for what the rate asks over the time it ran. */
async function withPySpy(t: Target, pySpyPath: string, hz: number): Promise<Run> {
  const base = await workRate(t, SECONDS - 2);
  const out = await Deno.makeTempFile({ suffix: ".txt" });
  const started = performance.now();
  const child = new Deno.Command(pySpyPath, {
    args: ["record", "--nonblocking", "-r", String(hz), "-p", String(t.pid), "-f", "raw"]
      .concat(["-o", out]),
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const window = new Promise((r) => setTimeout(r, SECONDS * 1000));
  await new Promise((r) => setTimeout(r, 1000));
  const sampled = await workRate(t, SECONDS - 2);
  await window;
  child.kill("SIGINT");
  const seconds = (performance.now() - started) / 1000;
  const res = await child.output();
  const after = await workRate(t, SECONDS - 2);
  Deno.removeSync(out);
  const text = new TextDecoder().decode(res.stdout) + new TextDecoder().decode(res.stderr);
  const taken = /Samples: (\d+)/.exec(text);
  if (!taken) throw new Error(`py-spy failed: ${text.slice(-400)}`);
  return {
    asked: Math.round(hz * seconds),
    taken: Number(taken[1]),
    speed: 2 * sampled / (base + after),
  };
}

const share = (r: Run) => `${(100 * r.taken / r.asked).toFixed(0).padStart(3)}%`;
const slow = (r: Run) => `${(100 * (1 - r.speed)).toFixed(1).padStart(5)}%`;

export async function benchTopRate(
  py: Python,
  progress: (row: string) => void = () => {},
): Promise<string> {
  const pySpyPath = await pySpy();
  const rows: string[] = [];
  for (const threads of THREADS) {
    const t = await Target.start(py, String(threads), {
      script: `${REPO}/tests/targets/busy.py`,
    });
    const env = cliEnv();
    try {
      await cli(["attach", String(t.pid), "--json"], env);
      for (const hz of RATES) {
        const peeka = await withPeeka(t, env, hz);
        const spy = await withPySpy(t, pySpyPath, hz);
        const row =
          `${py.version.padEnd(6)} ${String(threads).padStart(2)} thr ${
            String(hz).padStart(5)
          } Hz` +
          `  top ${String(peeka.taken).padStart(6)}/${peeka.asked} ${share(peeka)} slowdown ${
            slow(peeka)
          }` +
          `  | py-spy ${String(spy.taken).padStart(6)}/${spy.asked} ${share(spy)} slowdown ${
            slow(spy)
          }` +
          `  | top/py-spy: taken ${(peeka.taken / Math.max(1, spy.taken)).toFixed(2)}` +
          ` target speed ${(peeka.speed / spy.speed).toFixed(3)}`;
        progress(row);
        rows.push(row);
      }
      await cli(["detach", "--json"], env);
    } finally {
      await t.stop();
    }
  }
  return rows.join("\n");
}

/** For bench/run.ts: one interpreter (3.12 where there is one), with a title. */
export async function benchTopRateHeadline(): Promise<string> {
  const py = pythons().find((p) => p.version === "3.12") ?? pythons()[0];
  return `\ntop at high rates vs py-spy record --nonblocking, ${SECONDS} s windows:\n` +
    await benchTopRate(py);
}

if (import.meta.main) {
  const wanted = Deno.args[0] ?? "3.12";
  const py = pythons().find((p) => p.version === wanted);
  if (!py) throw new Error(`no python ${wanted}`);
  console.log(`top vs py-spy record --nonblocking, ${SECONDS} s windows:`);
  await benchTopRate(py, console.log);
}
