# logger: list the target's loggers, change a level at run time, put levels back.
# logging is never imported: a target that has not loaded it has no loggers.
# Levels peeka changed are remembered (first original only) and restored by
# `logger --reset` and on detach. Listing reads loggers and handlers as stored
# (reflect): a Logger or Handler subclass, or a stream wrapper with a __getattr__, runs
# none of its code for it; only changing a level calls the target's setLevel.
import sys
from fnmatch import fnmatchcase

REQUIRES = ("errors", "reflect")


def _logging():
    logging = sys.modules.get("logging")
    if not reflect.is_module(logging):
        raise errors.CommandError("logging is not loaded in the target: it has no loggers", code="NOT_LOADED")
    return logging


def _level_name(logging, level):
    """What logging.getLevelName says of a level, read from its table."""
    if type(level) is not int:
        return "?"
    name = reflect.module_dict(logging).get("_levelToName", {}).get(level)
    return name if type(name) is str else "Level %d" % level


def _loggers(logging):
    """name -> Logger for every real logger (placeholders skipped), root included."""
    namespace = reflect.module_dict(logging)
    logger_class, root = namespace.get("Logger"), namespace.get("root")
    registry = reflect.fields(reflect.lookup(logger_class, "manager")).get("loggerDict")
    out = {"root": root}
    for name, obj in list(registry.items()) if type(registry) is dict else ():
        if issubclass(type(obj), logger_class):
            out[name] = obj
    return out


def _field(obj, name, default=None):
    return reflect.fields(obj).get(name, default)


def _handler(logging, h):
    info = {"type": reflect.type_simple_name(type(h)), "level": _level_name(logging, _level_of(h))}
    target = _field(h, "baseFilename")
    if target is None:
        target = _stream_name(_field(h, "stream"))
    if type(target) is str:
        info["target"] = target
    return info


def _stream_name(stream):
    """A built-in stream's name (e.g. '<stderr>', read by C code), else its `name` field."""
    if stream is None or reflect.can_change(type(stream)):
        return _field(stream, "name")
    try:
        return reflect.static_attribute(stream, type(stream), "name")
    except Exception:
        return None


def _effective_level(lg):
    """Logger.getEffectiveLevel() as logging computes it, from the fields: the first level set
    up the parents (a subclass may override the method)."""
    for _ in range(256):
        if lg is None:
            break
        level = _level_of(lg)
        if level:
            return level
        lg = _field(lg, "parent")
    return 0


def _level_of(obj):
    level = _field(obj, "level", 0)
    return level if type(level) is int else 0


def _flag(obj, name, default):
    value = _field(obj, name)
    return bool(value) if type(value) in (bool, int) else default


def describe(logging, name, lg):
    level, effective = _level_of(lg), _effective_level(lg)
    handlers = _field(lg, "handlers")
    return {"name": name, "level": _level_name(logging, level), "level_num": level,
            "effective_level": _level_name(logging, effective), "effective_level_num": effective,
            "handlers": [_handler(logging, h) for h in (list(handlers) if type(handlers) is list else [])],
            "propagate": _flag(lg, "propagate", True), "disabled": _flag(lg, "disabled", False)}


def _parse_level(logging, text):
    if isinstance(text, int) or (isinstance(text, str) and text.strip().isdigit()):
        return int(text)
    known = dict((k.upper(), v) for k, v in getattr(logging, "_nameToLevel", {}).items())
    level = known.get(str(text).strip().upper())
    if level is None:
        raise errors.CommandError("unknown level '%s' (one of: %s, or a number)"
                                  % (text, ", ".join(sorted(known, key=lambda k: known[k]))), code="BAD_ARGS")
    return level


_changed_by = []  # the agent whose state holds levels peeka changed (for a forked child)


def after_fork_in_child():
    """A child forked from the target starts with the target's own levels (the agent calls
    this in the child; the parent keeps peeka's until reset or detach)."""
    for agent in _changed_by:
        restore(agent)
    del _changed_by[:]


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
    if ctx.agent not in _changed_by:
        _changed_by.append(ctx.agent)
    lg.setLevel(new)
    return {"action": "set", "name": name, "old_level": _level_name(logging, old), "old_level_num": old,
            "new_level": _level_name(logging, new), "new_level_num": new,
            "effective_level": _level_name(logging, lg.getEffectiveLevel()), "restore": "peeka logger --reset"}
