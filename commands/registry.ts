// Every built-in command: one folder each, one line here. (The TUI, which uses these commands,
// joins them in mod.ts: it sits above them.)
import type { PeekaCommand } from "../core/command.ts";
import attach from "./attach/command.ts";
import detach from "./detach/command.ts";
import ps from "./ps/command.ts";
import thread from "./thread/command.ts";
import tasks from "./tasks/command.ts";
import demo from "./demo/command.ts";
import watch from "./watch/command.ts";
import stack from "./stack/command.ts";
import monitor from "./monitor/command.ts";
import trace from "./trace/command.ts";
import line from "./line/command.ts";
import reset from "./reset/command.ts";
import sc from "./sc/command.ts";
import sm from "./sm/command.ts";
import logger from "./logger/command.ts";
import inspect from "./inspect/command.ts";
import memory from "./memory/command.ts";
import top from "./top/command.ts";
import plugins from "./plugins/command.ts";
import dump from "./dump/command.ts";
import source from "./source/command.ts";
import run from "./run/command.ts";
import tt from "./tt/command.ts";

export const builtinCommands: PeekaCommand[] = [
  attach,
  detach,
  ps,
  thread,
  tasks,
  watch,
  stack,
  trace,
  line,
  monitor,
  tt,
  reset,
  sc,
  sm,
  logger,
  inspect,
  source,
  run,
  memory,
  top,
  dump,
  plugins,
  demo,
];

/** A built-in command by name: how the layers above (the TUI) reach a command. */
export function builtinCommand(name: string): PeekaCommand {
  const found = builtinCommands.find((c) => c.name === name);
  if (!found) throw new Error(`no built-in command ${name}`);
  return found;
}
