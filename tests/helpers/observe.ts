// Shared by the tests that observe the app.py target (watch, stack, monitor, trace).
import { REPO, StreamingCli, type Target, waitUntil } from "./env.ts";

export type Obs = Record<string, unknown> & {
  args: unknown[];
  kwargs: Record<string, unknown>;
  result: unknown;
  func_name: string;
  count: number;
  success: boolean;
  location: string;
  duration_ms: number;
  exception: { type: string; message: string } | null;
  thread: { name: string };
};

export const APP = `${REPO}/tests/targets/app.py`;

/** Starts a watch-like command, waits until it is armed, runs the trigger, and waits for its end. */
export async function observe(
  env: Record<string, string>,
  args: string[],
  trigger: () => Promise<unknown>,
): Promise<{ code: number; obs: Obs[]; cli: StreamingCli }> {
  const c = new StreamingCli(args, env);
  await c.waitFor((l) =>
    l.type === "event" && String(l.event).endsWith("_started") || l.type === "error"
  );
  if (!c.lines.some((l) => l.type === "error")) await trigger();
  const code = await c.done;
  const obs = c.observations() as Obs[];
  if (code === 0 && !obs.length) {
    throw new Error(`no observation: ${JSON.stringify(c.lines)} ${c.stderr}`);
  }
  return { code, obs, cli: c };
}

export async function restored(t: Target) {
  await waitUntil(
    async () => {
      const r = await t.ask("introspect");
      return r.same_objects === true && (r.tools as number[]).length === 0 && r.profile === null;
    },
    3000,
    "every function is back to its own code, no tool id is held, no profile function is left",
  );
}
