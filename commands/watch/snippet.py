# watch: observe each call of the matched functions — arguments, result or
# exception, duration. Runs in the agent; the observe library's CallProbe does
# the work (see agent/lib/observe.py).


def run(ctx, args):
    lib = ctx.agent.lib
    observe = lib("observe")
    observation = observe.Observation(ctx, "watch", args)
    flags = [args.get(k) for k in ("before", "success", "exception", "finish")]
    finish = bool(args.get("finish")) or not any(flags)  # with no flag at all: when a call finishes
    probe = observe.CallProbe(lib("serialize"), observation, args, on_entry=bool(args.get("before")),
                              on_success=finish or bool(args.get("success")),
                              on_failure=finish or bool(args.get("exception")))
    return observation.run(probe)
