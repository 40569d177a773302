// Detaching: the inverse of attach, shared by the detach command and the TUI.
import { forgetSession, sessionPaths } from "../core/session.ts";
import type { AgentClient } from "../core/protocol.ts";
import { withdrawLeftoverRequests } from "./attach.ts";

/** The agent removes its files as its last step; wait for that so "detached" means gone. */
async function waitForRemoval(dir: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      Deno.statSync(dir);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

/** Asks the agent to undo everything and go; returns what it restored and any problem. */
export async function detachProcess(
  pid: number,
  agent: AgentClient,
): Promise<{ restored: number; errors: string[] }> {
  const dir = sessionPaths(pid).hostDir;
  // First take back PEP 768 requests a killed attach left in idle threads: once the agent has
  // removed its files, such a thread would look for a stub that is gone and print an error.
  withdrawLeftoverRequests(pid);
  const reply = await agent.request("detach");
  forgetSession(pid);
  const errors = [...((reply.errors as string[] | undefined) ?? [])];
  if (!(await waitForRemoval(dir, 2000))) errors.push(`${dir} is still there`);
  return { restored: Number(reply.restored ?? 0), errors };
}
