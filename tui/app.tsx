// The interactive terminal UI (Ink + React): pick a Python process, attach, then
// panels for threads, a live watch stream, monitor statistics and top. Every key
// is shown in the footer; quitting asks whether to detach and restores the terminal.
import React, { createContext, useCallback, useContext, useEffect, useRef, useState } from "react";
import { Box, render, Text, useApp, useInput, useStdin, useStdout } from "ink";
import { type PythonProcess, pythonProcesses } from "../core/processes.ts";
import { printableDeep } from "../core/output.ts";
import { builtinCommand } from "../commands/registry.ts";
import { type Item, type Stream, type Target, TargetGroup, TargetSession } from "./target.ts";
import { requestFor } from "./request.ts";
import { chunkOf, KeyQueue, typeInto } from "./keys.ts";

// The commands the panels run, reached through the registry (the TUI imports no command).
const watchCommand = builtinCommand("watch");
const monitorCommand = builtinCommand("monitor");
const topCommand = builtinCommand("top");

type Key = [string, string];

function useTerminalSize(): { columns: number; rows: number } {
  const { stdout } = useStdout();
  const [size, setSize] = useState({ columns: stdout.columns || 80, rows: stdout.rows || 24 });
  useEffect(() => {
    const onResize = () => setSize({ columns: stdout.columns || 80, rows: stdout.rows || 24 });
    stdout.on("resize", onResize);
    return () => void stdout.off("resize", onResize);
  }, [stdout]);
  return size;
}

function Footer({ keys }: { keys: Key[] }) {
  return (
    <Box>
      {keys.map(([k, what]) => (
        <Box key={k} marginRight={2}>
          <Text inverse>{` ${k} `}</Text>
          <Text>{` ${what}`}</Text>
        </Box>
      ))}
    </Box>
  );
}

/** Keys that followed a submitted line in one input chunk, handed on as if typed afterwards. */
const ReplayKeys = createContext<(keys: string) => void>(() => {});

function KeyReplayProvider({ children }: { children: React.ReactNode }) {
  const { internal_eventEmitter } = useStdin();
  const queue = useRef(new KeyQueue());
  const [commit, setCommit] = useState(0);
  // Runs after the effects of every component below (children's effects come first), so the
  // handlers of the current screen are registered when a key is emitted.
  useEffect(() => {
    const key = queue.current.next();
    if (key !== null) internal_eventEmitter.emit("input", key);
    if (queue.current.pending) setCommit((n) => n + 1);
  }, [commit]);
  const push = useCallback((keys: string) => {
    if (!keys) return;
    queue.current.push(keys);
    setCommit((n) => n + 1);
  }, []);
  return <ReplayKeys.Provider value={push}>{children}</ReplayKeys.Provider>;
}

/** A one-line text field: printable keys edit it, Enter submits, Esc cancels. Pasted text may
 * carry its Enter (and more keys) in the same input: see keys.ts. */
function Prompt(
  { label, onSubmit, onCancel, onChange }: {
    label: string;
    onSubmit: (v: string) => void;
    onCancel: () => void;
    onChange?: (v: string) => void;
  },
) {
  const [value, setValue] = useState("");
  const replayKeys = useContext(ReplayKeys);
  useInput((input, key) => {
    if (key.escape) return onCancel();
    if (key.ctrl || key.meta) return;
    const typed = typeInto(value, chunkOf(input, key));
    if (typed.value !== value) {
      setValue(typed.value);
      onChange?.(typed.value);
    }
    if (typed.submitted) {
      onSubmit(typed.value);
      replayKeys(typed.rest);
    }
  });
  return (
    <Text>
      <Text color="cyan">{label}</Text> {value}
      <Text inverse></Text>
    </Text>
  );
}

// ---- choosing a process -------------------------------------------------------------------
function Picker(
  { onPick, onQuit }: {
    onPick: (p: PythonProcess, workers: boolean) => void;
    onQuit: () => void;
  },
) {
  const [all, setAll] = useState<PythonProcess[]>(() => printableDeep(pythonProcesses()));
  const [filter, setFilter] = useState("");
  const [index, setIndex] = useState(0);
  const { rows } = useTerminalSize();
  const replayKeys = useContext(ReplayKeys);
  const matching = (text: string) => all.filter((p) => `${p.pid} ${p.command}`.includes(text));
  const shown = matching(filter);
  useInput((input, key) => {
    if (key.upArrow) setIndex((i) => Math.max(0, i - 1));
    else if (key.downArrow) setIndex((i) => Math.min(shown.length - 1, i + 1));
    else if (key.escape) setFilter("");
    else if (input === "q" && !filter) onQuit();
    else if (input === "r" && !filter) setAll(printableDeep(pythonProcesses()));
    else if (key.tab && shown[index]?.children.length) onPick(shown[index], true);
    else if (!key.ctrl && !key.meta) {
      const typed = typeInto(filter, chunkOf(input, key));
      if (typed.value !== filter) {
        setFilter(typed.value);
        setIndex(0);
      }
      if (!typed.submitted) return;
      // Typed and submitted at once: the choice is the first match of the new filter.
      const chosen = typed.value === filter ? shown[index] : matching(typed.value)[0];
      if (chosen) onPick(chosen, false);
      replayKeys(typed.rest);
    }
  });
  return (
    <Box flexDirection="column" height={rows}>
      <Text bold>peeka — choose a Python process to attach to</Text>
      <Text dimColor>filter: {filter || "(type to filter by pid or command)"}</Text>
      <Box flexDirection="column" flexGrow={1}>
        {shown.slice(0, Math.max(1, rows - 5)).map((p, i) => (
          <Text key={p.pid} inverse={i === index} wrap="truncate-end">
            {`${String(p.pid).padStart(7)}  ${p.version.padEnd(5)} ${
              p.attached ? "attached" : "        "
            } ${(p.role ?? "").padEnd(8)} ${p.command}`}
          </Text>
        ))}
        {shown.length === 0 ? <Text color="yellow">no Python process matches</Text> : null}
      </Box>
      <Footer
        keys={[
          ["↑↓", "select"],
          ["enter", "attach"],
          ["tab", "its workers as one"],
          ["type", "filter"],
          ["r", "refresh"],
          ["q", "quit"],
        ]}
      />
    </Box>
  );
}

// ---- panels ------------------------------------------------------------------------------------
interface PanelProps {
  session: Target;
  active: boolean;
  height: number;
  setKeys: (k: Key[]) => void;
  setTyping: (b: boolean) => void;
}

interface ThreadRow {
  name: string;
  ident: number;
  state: string;
  stack: { file: string; line: number; function: string }[];
}

function ThreadsPanel({ session, active, height, setKeys }: PanelProps) {
  const [threads, setThreads] = useState<ThreadRow[]>([]);
  const [error, setError] = useState("");
  const [index, setIndex] = useState(0);
  const load = () =>
    session.threads().then((d) => {
      setThreads(d.threads as ThreadRow[]);
      setError("");
    }, (e) => setError(String(e?.message ?? e)));
  useEffect(() => {
    if (!active) return;
    setKeys([["↑↓", "select"], ["r", "refresh"]]);
    load();
    const timer = setInterval(load, 2000);
    return () => clearInterval(timer);
  }, [active]);
  useInput((input, key) => {
    if (key.upArrow) setIndex((i) => Math.max(0, i - 1));
    else if (key.downArrow) setIndex((i) => Math.min(threads.length - 1, i + 1));
    else if (input === "r") load();
  }, { isActive: active });
  const chosen = threads[Math.min(index, threads.length - 1)];
  return (
    <Box flexDirection="column" height={height}>
      {error ? <Text color="red">{error}</Text> : null}
      {threads.map((t) => (
        <Text key={t.ident} inverse={t === chosen} wrap="truncate-end">
          {`${t.name.padEnd(24)} ${String(t.ident).padEnd(18)} ${t.state}`}
        </Text>
      ))}
      <Text dimColor>{chosen ? `— stack of "${chosen.name}" (innermost last)` : ""}</Text>
      {(chosen?.stack ?? []).slice(-Math.max(1, height - threads.length - 2)).map((f, i) => (
        <Text key={i} wrap="truncate-end">{`  ${f.function}  ${f.file}:${f.line}`}</Text>
      ))}
    </Box>
  );
}

/** Shared by the streaming panels: one stream at a time, stopped when replaced or unmounted. */
function useStream() {
  const current = useRef<Stream | null>(null);
  useEffect(() => () => current.current?.stop(), []);
  return {
    start(s: Stream) {
      current.current?.stop();
      current.current = s;
    },
    stop() {
      current.current?.stop();
      current.current = null;
    },
    running: () => current.current !== null,
  };
}

function watchLine(o: Item): string {
  const time = new Date(Number(o.timestamp) * 1000).toISOString().slice(11, 23);
  const exc = o.exception as { type: string; message: string } | null;
  const outcome = exc ? `raised ${exc.type}: ${exc.message}` : `→ ${JSON.stringify(o.result)}`;
  const from = o.pid ? `[${o.pid}] ` : ""; // a worker of a group
  return `${from}${time} ${o.func_name} #${o.count} ${Number(o.duration_ms).toFixed(3)}ms ` +
    `args=${JSON.stringify(o.args)} ${outcome}`;
}

function WatchPanel({ session, active, height, setKeys, setTyping }: PanelProps) {
  const [mode, setMode] = useState<"idle" | "pattern" | "filter">("idle");
  const [lines, setLines] = useState<string[]>([]);
  const [status, setStatus] = useState("press w and type a function, e.g. myapp.orders.total");
  const [filter, setFilter] = useState("");
  const [paused, setPaused] = useState(false);
  const frozen = useRef<string[] | null>(null);
  const stream = useStream();
  useEffect(() => {
    if (active) {
      setKeys([["w", "watch a function"], ["/", "filter"], ["p", paused ? "resume" : "pause"], [
        "c",
        "clear",
      ], ["x", "stop"]]);
    }
  }, [active, paused]);
  useEffect(() => setTyping(active && mode !== "idle"), [active, mode]);
  const start = (pattern: string) => {
    setMode("idle");
    if (!pattern) return;
    setStatus(`watching ${pattern}…`);
    stream.start(session.stream(
      watchCommand,
      requestFor(watchCommand, [pattern], { rate: 200 }),
      (item) => {
        if (item.type === "observation") setLines((l) => [...l.slice(-999), watchLine(item)]);
        else if (item.type === "event") {
          setStatus(`${item.event} ${JSON.stringify(item.data ?? {}).slice(0, 120)}`);
        }
      },
      (error) => setStatus(error ? `error: ${error}` : `stopped watching ${pattern}`),
    ));
  };
  useInput((input) => {
    if (input === "w") setMode("pattern");
    else if (input === "/") setMode("filter");
    else if (input === "p") {
      frozen.current = paused ? null : lines;
      setPaused(!paused);
    } else if (input === "c") setLines([]);
    else if (input === "x") stream.stop();
  }, { isActive: active && mode === "idle" });
  const source = paused && frozen.current ? frozen.current : lines;
  const visible = source.filter((l) => l.includes(filter)).slice(-Math.max(1, height - 3));
  return (
    <Box flexDirection="column" height={height}>
      {mode === "pattern"
        ? <Prompt label="watch:" onSubmit={start} onCancel={() => setMode("idle")} />
        : mode === "filter"
        ? (
          <Prompt
            label="filter:"
            onChange={setFilter}
            onSubmit={() => setMode("idle")}
            onCancel={() => {
              setFilter("");
              setMode("idle");
            }}
          />
        )
        : (
          <Text dimColor wrap="truncate-end">
            {status}
            {filter ? `  [filter: ${filter}]` : ""}
            {paused ? "  [PAUSED]" : ""}
          </Text>
        )}
      {visible.map((l, i) => <Text key={i} wrap="truncate-end">{l}</Text>)}
    </Box>
  );
}

function MonitorPanel({ session, active, height, setKeys, setTyping }: PanelProps) {
  const [prompting, setPrompting] = useState(false);
  const [rows, setRows] = useState<Record<string, Item>>({});
  const [status, setStatus] = useState("press m and type a function; statistics every 2 s");
  const stream = useStream();
  useEffect(() => {
    if (active) setKeys([["m", "monitor a function"], ["x", "stop"]]);
  }, [active]);
  useEffect(() => setTyping(active && prompting), [active, prompting]);
  const start = (pattern: string) => {
    setPrompting(false);
    if (!pattern) return;
    setStatus(`monitoring ${pattern} every 2 s…`);
    stream.start(session.stream(
      monitorCommand,
      requestFor(monitorCommand, [pattern], { cycle: 2 }),
      (item) => {
        if (item.type === "observation") setRows((r) => ({ ...r, [String(item.func_name)]: item }));
      },
      (error) => setStatus(error ? `error: ${error}` : `stopped monitoring ${pattern}`),
    ));
  };
  useInput((input) => {
    if (input === "m") setPrompting(true);
    else if (input === "x") stream.stop();
  }, { isActive: active && !prompting });
  const ms = (v: unknown) =>
    (v === null || v === undefined ? "-" : Number(v).toFixed(3)).padStart(9);
  return (
    <Box flexDirection="column" height={height}>
      {prompting
        ? <Prompt label="monitor:" onSubmit={start} onCancel={() => setPrompting(false)} />
        : <Text dimColor>{status}</Text>}
      <Text bold>
        {"function".padEnd(40)} {"calls".padStart(7)} {"fail".padStart(6)} {"avg ms".padStart(9)}
        {" "}
        {"min ms".padStart(9)} {"max ms".padStart(9)} {"p95 ms".padStart(9)}
      </Text>
      {Object.values(rows).map((r) => (
        <Text key={String(r.func_name)} wrap="truncate-end">
          {`${String(r.func_name).padEnd(40)} ${String(r.calls).padStart(7)} ${
            String(r.fail).padStart(6)
          } ${ms(r.avg_ms)} ${ms(r.min_ms)} ${ms(r.max_ms)} ${ms(r.p95_ms)}`}
        </Text>
      ))}
    </Box>
  );
}

function TopPanel({ session, active, height, setKeys }: PanelProps) {
  const [table, setTable] = useState<Item | null>(null);
  const [status, setStatus] = useState("press s to start sampling (every 10 ms)");
  const [running, setRunning] = useState(false);
  const [idle, setIdle] = useState(false);
  const stream = useStream();
  useEffect(() => {
    if (active) {
      setKeys([["s", running ? "stop sampling" : "start sampling"], [
        "i",
        idle ? "hide idle threads" : "show idle threads",
      ]]);
    }
  }, [active, running, idle]);
  const start = (withIdle: boolean) => {
    setRunning(true);
    setStatus(withIdle ? "sampling, idle threads included…" : "sampling (idle threads left out)…");
    stream.start(session.stream(
      topCommand,
      requestFor(topCommand, [], { limit: Math.max(5, height - 3), idle: withIdle }),
      (item) => {
        if (item.type === "observation") setTable(item);
      },
      (error) => {
        if (error) setStatus(`error: ${error}`);
      },
    ));
  };
  useInput((input) => {
    if (input === "i") {
      setIdle(!idle);
      if (running) start(!idle);
    } else if (input === "s" && running) {
      stream.stop();
      setRunning(false);
      setStatus("stopped");
    } else if (input === "s") start(idle);
  }, { isActive: active });
  const rows = (table?.functions ?? []) as Item[];
  return (
    <Box flexDirection="column" height={height}>
      <Text dimColor>
        {table ? `${table.thread_samples} samples over ${table.seconds}s; ${status}` : status}
      </Text>
      <Text bold>{"%own".padStart(6)} {"%total".padStart(7)} function</Text>
      {rows.map((r, i) => (
        <Text key={i} wrap="truncate-end">
          {`${String(r.own_pct).padStart(6)} ${
            String(r.total_pct).padStart(7)
          }  ${r.function} (${r.file}:${r.line})`}
        </Text>
      ))}
    </Box>
  );
}

// ---- the attached screen ----------------------------------------------------------------------
const PANELS = [["1", "threads"], ["2", "watch"], ["3", "monitor"], ["4", "top"]] as const;
const PANEL_VIEWS = [ThreadsPanel, WatchPanel, MonitorPanel, TopPanel];

function Attached(
  { session, onQuit }: { session: Target; onQuit: (detach: boolean) => void },
) {
  const { rows } = useTerminalSize();
  const [panel, setPanel] = useState(0);
  const [keys, setKeys] = useState<Key[]>([]);
  const [typing, setTyping] = useState(false);
  const [asking, setAsking] = useState(false);
  useInput((input, key) => {
    if (asking) {
      if (input === "y") onQuit(true);
      else if (input === "n") onQuit(false);
      else if (key.escape) setAsking(false);
      return;
    }
    if (typing) return;
    if (input === "q") setAsking(true);
    else if (key.tab) setPanel((p) => (p + 1) % PANELS.length);
    else if (/^[1-4]$/.test(input)) setPanel(Number(input) - 1);
  });
  const height = Math.max(3, rows - 4);
  const props = { session, height, setKeys, setTyping };
  return (
    <Box flexDirection="column" height={rows}>
      <Box>
        <Text bold>
          {`peeka — ${
            session instanceof TargetGroup ? session.label : `pid ${session.pid}`
          } (Python ${session.pythonVersion})  `}
        </Text>
        {PANELS.map(([k, name], i) => <Text key={k} inverse={i === panel}>{` ${k} ${name} `}
        </Text>)}
      </Box>
      <Box flexDirection="column" height={height}>
        {/* Every panel stays mounted, so a watch keeps running while another panel is shown. */}
        {PANEL_VIEWS.map((View, i) => (
          <Box key={i} display={panel === i ? "flex" : "none"}>
            <View {...props} active={panel === i} />
          </Box>
        ))}
      </Box>
      {asking
        ? (
          <Text color="yellow">
            {`Detach from ${session.label} before quitting? y: detach and quit   n: quit, stay attached   esc: back`}
          </Text>
        )
        : <Text></Text>}
      <Footer
        keys={[
          ["1-4/tab", "panel"],
          ...(typing ? [["enter", "ok"], ["esc", "cancel"]] as Key[] : keys),
          ["q", "quit"],
        ]}
      />
    </Box>
  );
}

// ---- the whole app -----------------------------------------------------------------------------
type Outcome = { message: string; code: number };

function App({ pid, done }: { pid?: number; done: (o: Outcome) => void }) {
  const { exit } = useApp();
  const [session, setSession] = useState<Target | null>(null);
  const [busy, setBusy] = useState(pid ? `attaching to ${pid}…` : "");
  const [error, setError] = useState("");
  const [closed, setClosed] = useState(false);
  const finish = (o: Outcome) => {
    done(o);
    setClosed(true); // the last frame is empty: the shell's prompt comes back on a clean line
    setTimeout(exit, 0);
  };
  const attachTo = (target: number, workers = false) => {
    setBusy(`attaching to ${workers ? `the workers of ${target}` : target}…`);
    (workers ? TargetGroup.attach(target) : TargetSession.attach(target)).then((s: Target) => {
      setBusy("");
      setSession(s);
    }, (e) => {
      setBusy("");
      setError(`cannot attach to ${target}: ${e?.message ?? e}`);
    });
  };
  useEffect(() => {
    if (pid) attachTo(pid);
  }, []);
  const quit = (detach: boolean) => {
    if (!session) return finish({ message: "", code: 0 });
    if (!detach) {
      return finish({
        message: session instanceof TargetGroup
          ? `Left ${session.label} attached (peeka detach --children ${session.pid})`
          : `Left process ${session.pid} attached (peeka detach ${session.pid})`,
        code: 0,
      });
    }
    setBusy(`detaching from ${session.label}…`);
    session.detach().then(
      (errors) =>
        finish({
          message: `Detached from ${session.label}${
            errors.length ? ` (${errors.join("; ")})` : ""
          }`,
          code: errors.length ? 2 : 0,
        }),
      (e) => finish({ message: `detach failed: ${e?.message ?? e}`, code: 1 }),
    );
  };
  if (closed) return null;
  if (busy) return <Text color="cyan">{busy}</Text>;
  if (session) return <Attached session={session} onQuit={quit} />;
  return (
    <Box flexDirection="column">
      {error ? <Text color="red">{error}</Text> : null}
      <Picker
        onPick={(p, workers) => attachTo(p.pid, workers)}
        onQuit={() => finish({ message: "", code: 0 })}
      />
    </Box>
  );
}

/** Runs the TUI until the user quits; returns the exit status. */
export async function runTui(opts: { pid?: number } = {}): Promise<number> {
  let outcome: Outcome = { message: "", code: 0 };
  const app = render(
    <KeyReplayProvider>
      <App pid={opts.pid} done={(o) => (outcome = o)} />
    </KeyReplayProvider>,
    { exitOnCtrlC: true },
  );
  await app.waitUntilExit();
  app.cleanup();
  if (outcome.message) console.log(outcome.message);
  return outcome.code;
}
