# logger: list the target's loggers, change a level at run time, put levels back.
# logging is never imported: a target that has not loaded it has no loggers.
# Levels peeka changed are remembered (first original only) and restored by
# `logger --reset` and on detach.
import sys
from fnmatch import fnmatchcase

REQUIRES = ("errors",)


def _logging():
    logging = sys.modules.get("logging")
    if logging is None:
        raise errors.CommandError("logging is not loaded in the target: it has no loggers", code="NOT_LOADED")
    return logging


def _level_name(logging, level):
    name = logging.getLevelName(level)
    return name if isinstance(name, str) else str(level)


def _loggers(logging):
    """name -> Logger for every real logger (placeholders skipped), root included."""
    out = {"root": logging.getLogger()}
    for name, obj in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(obj, logging.Logger):
            out[name] = obj
    return out


def _handler(h):
    info = {"type": type(h).__name__, "level": _level_name(sys.modules["logging"], getattr(h, "level", 0))}
    target = getattr(h, "baseFilename", None)
    if target is None:
        stream = getattr(h, "stream", None)
        target = getattr(stream, "name", None) if stream is not None else None
    if isinstance(target, str):
        info["target"] = target
    return info


def describe(logging, name, lg):
    return {"name": name, "level": _level_name(logging, lg.level), "level_num": lg.level,
            "effective_level": _level_name(logging, lg.getEffectiveLevel()),
            "effective_level_num": lg.getEffectiveLevel(),
            "handlers": [_handler(h) for h in list(lg.handlers)], "propagate": bool(lg.propagate),
            "disabled": bool(lg.disabled)}


def _parse_level(logging, text):
    if isinstance(text, int) or (isinstance(text, str) and text.strip().isdigit()):
        return int(text)
    known = dict((k.upper(), v) for k, v in getattr(logging, "_nameToLevel", {}).items())
    level = known.get(str(text).strip().upper())
    if level is None:
        raise errors.CommandError("unknown level '%s' (one of: %s, or a number)"
                                  % (text, ", ".join(sorted(known, key=lambda k: known[k]))), code="BAD_ARGS")
    return level


def restore(agent):
    """Puts back every level peeka changed; returns what was restored."""
    saved = agent.state.pop("logger_levels", {})
    logging = sys.modules.get("logging")
    done = []
    if logging is None:
        return done
    loggers = _loggers(logging)
    for name, level in saved.items():
        lg = loggers.get(name)
        if lg is not None:
            lg.setLevel(level)
            done.append({"name": name, "level": _level_name(logging, level)})
    return done


def run(ctx, args):
    if args.get("reset"):
        return {"action": "reset", "restored": restore(ctx.agent)}
    logging = _logging()
    loggers = _loggers(logging)
    name, level = args.get("name"), args.get("level")
    if not name:
        if level is not None:
            raise errors.CommandError("--level needs a logger name: peeka logger myapp.db --level DEBUG",
                                      code="BAD_ARGS")
        pattern = args.get("pattern") or "*"
        items = [describe(logging, n, lg) for n, lg in sorted(loggers.items()) if fnmatchcase(n, pattern)]
        return {"action": "list", "pattern": pattern, "loggers": items, "count": len(items)}
    lg = loggers.get(name)
    if lg is None:
        close = sorted(n for n in loggers if n.startswith(name.split(".")[0]))[:5]
        raise errors.CommandError("no logger named '%s'%s" % (name, " (similar: %s)" % ", ".join(close) if close else ""),
                                  code="NOT_FOUND")
    if level is None:
        return dict(describe(logging, name, lg), action="get")
    new = _parse_level(logging, level)
    old = lg.level
    saved = ctx.agent.state.setdefault("logger_levels", {})
    saved.setdefault(name, old)             # the original, however many times it is changed
    ctx.agent.on_detach("logger", lambda: restore(ctx.agent))
    lg.setLevel(new)
    return {"action": "set", "name": name, "old_level": _level_name(logging, old), "old_level_num": old,
            "new_level": _level_name(logging, new), "new_level_num": new,
            "effective_level": _level_name(logging, lg.getEffectiveLevel()), "restore": "peeka logger --reset"}
