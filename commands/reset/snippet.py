# reset: stop the watches, stacks and monitors whose functions match a
# pattern (or all of them) — whichever client started them — and take every
# instrumentation out. --list only reports.
import fnmatch


def run(ctx, args):
    inst = ctx.agent.lib("instrument")
    registry = ctx.agent.state.setdefault("watches", {})
    pattern = args.get("pattern")
    entries = list(registry.values())
    if not args.get("all") and not args.get("list"):
        entries = [e for e in entries
                   if fnmatch.fnmatchcase(e["pattern"], pattern)
                   or any(fnmatch.fnmatchcase(f, pattern) for f in e["functions"])]
    public = [dict((k, v) for k, v in e.items() if k != "stop") for e in entries]
    if args.get("list"):
        return {"action": "list", "enhanced": public, "total": len(public), "instrumented": inst.status()}
    for e in entries:
        e["stop"].set()  # its stream ends and removes its own instrumentation
    removed = inst.uninstall_all() if args.get("all") else 0
    return {"action": "reset", "affected": public, "count": len(public), "uninstalled": removed}
