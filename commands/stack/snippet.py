# stack: where the matched functions are called from — the caller stack at each
# entry. Runs in the agent: the observe library's CallProbe, at entry only, with
# the stack added to each observation.
import linecache


def caller_stack(frame, depth):
    """The frames that led to this call, innermost (the caller) first."""
    out = []
    f = frame.f_back if frame is not None else None
    while f is not None and len(out) < depth:
        code = f.f_code
        line = f.f_lineno
        out.append({"file": code.co_filename, "line": line, "function": code.co_name,
                    "code": (linecache.getline(code.co_filename, line).strip() or None)})
        f = f.f_back
    return out


def run(ctx, args):
    lib = ctx.agent.lib
    observe = lib("observe")
    stack_depth = int(args.get("stack_depth"))

    class StackProbe(observe.CallProbe):
        def observation(self, call, location, result, exc, duration_ns):
            obs = observe.CallProbe.observation(self, call, location, result, exc, duration_ns)
            obs["stack"] = caller_stack(call.frame, stack_depth)
            return obs

    observation = observe.Observation(ctx, "stack", args)
    probe = StackProbe(lib("serialize"), observation, args, on_entry=True, on_success=False, on_failure=False)
    return observation.run(probe)
