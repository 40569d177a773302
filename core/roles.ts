// What a Python process is in its family, told from command lines only: a pre-fork server's
// master or worker, a multiprocessing helper, a forked child. Nothing is asked of the process.

/** Servers whose master forks workers running the same command line. */
const PREFORK_SERVERS: { name: RegExp; worker: string }[] = [
  { name: /(?:^|[\s/])gunicorn(?:\s|$)|-m gunicorn\b/, worker: "worker" },
  { name: /(?:^|[\s/])uwsgi(?:\s|$)/, worker: "worker" },
  { name: /(?:^|[\s/])celery(?:\s|$)|-m celery\b/, worker: "pool worker" },
];

/** Command lines multiprocessing gives the processes it starts with exec. */
const MULTIPROCESSING: [RegExp, string][] = [
  [/multiprocessing\.spawn import spawn_main|--multiprocessing-fork/, "spawn worker"],
  [/multiprocessing\.forkserver import main/, "forkserver"],
  [/multiprocessing\.(?:resource|semaphore)_tracker import main/, "resource tracker"],
];

/**
 * The role of a process with command line `command` whose parent runs `parentCommand` (null
 * when the parent is not Python). A process title set by setproctitle ("gunicorn: worker
 * [app]") says it outright; otherwise a child running its parent's very command line was forked
 * by it (a worker of a pre-fork server, or of a multiprocessing pool with the fork method).
 */
export function roleOf(command: string, parentCommand: string | null): string | null {
  const title = /^(\S+): (master|worker)\b/.exec(command);
  if (title) return title[2];
  for (const [pattern, role] of MULTIPROCESSING) if (pattern.test(command)) return role;
  const forked = parentCommand !== null && parentCommand === command;
  if (parentCommand !== null && /multiprocessing\.forkserver import main/.test(parentCommand)) {
    return "forkserver worker";
  }
  const server = PREFORK_SERVERS.find((s) => s.name.test(command));
  if (server) return forked ? server.worker : "master";
  return forked ? "forked child" : null;
}
