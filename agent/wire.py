# The wire format's outgoing side: one frame per reply, which never fails whatever a snippet
# put in it, and the error replies. A part of the agent's source (agent/embed.ts joins the parts).
#
# Wire format (both directions): 4-byte big-endian length N (1..16 MiB), then N
# bytes of UTF-8 JSON encoding one object. Incoming frames are read as their bytes
# arrive (never preallocated from the announced length), within a per-frame deadline
# and a budget of bytes in flight shared by all connections; connections are capped.
import json
import math
import struct

MAX_FRAME = 16 * 1024 * 1024


def _safe_str(value):
    try:
        return str(value)
    except Exception:
        try:
            return object.__repr__(value)
        except Exception:
            return "<unprintable>"


def _jsonable(obj, seen, depth):
    """Slow path: rebuild obj so strict JSON can encode it (NaN, odd keys, cycles, bad __str__)."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return "NaN" if obj != obj else ("Infinity" if obj > 0 else "-Infinity")
    if not isinstance(obj, (dict, list, tuple)):
        return _safe_str(obj)
    if depth > 200 or id(obj) in seen:
        return "<recursion>"
    seen.add(id(obj))
    try:
        if isinstance(obj, dict):
            return dict((k if isinstance(k, str) else _safe_str(k), _jsonable(v, seen, depth + 1))
                        for k, v in list(obj.items()))
        return [_jsonable(v, seen, depth + 1) for v in list(obj)]
    finally:
        seen.discard(id(obj))


def _frame(obj):
    """Encode one outgoing frame; never raises, whatever the snippet put in obj."""
    try:
        text = json.dumps(obj, separators=(",", ":"), default=str, allow_nan=False)
    except Exception:
        try:
            text = json.dumps(_jsonable(obj, set(), 0), separators=(",", ":"), allow_nan=False)
        except Exception as e:
            text = _replacement(obj, "ENCODE_ERROR", "cannot encode reply: %s" % _describe(e))
    data = text.encode("utf-8")  # ensure_ascii output: always valid UTF-8
    if len(data) > MAX_FRAME:
        data = _replacement(obj, "FRAME_TOO_LARGE", "reply of %d bytes exceeds 16 MiB" % len(data)).encode()
    return struct.pack(">I", len(data)) + data


def _replacement(obj, code, message):
    """An error frame sent instead of an unsendable one, keeping its request id if plain."""
    rid = obj.get("id") if isinstance(obj, dict) else None
    return json.dumps(_error(rid if isinstance(rid, (int, str)) else None, code, message))


def _error(rid, code, message, **extra):
    reply = {"id": rid, "type": "error", "code": code, "error": message}
    reply.update(extra)
    return reply


def _notice(code, message):
    """Error frame that answers no request (bad frame, refused peer): it has no id."""
    return {"type": "error", "code": code, "error": message}


def _describe(exc):
    return "%s: %s" % (type(exc).__name__, _safe_str(exc))

