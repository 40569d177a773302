#!/usr/bin/env python3
"""Fuzz test of the agent's frame reader, against a real target process.

Sends random bytes, frames whose header lies about their length, and runs of random JSON
frames, all cut at random points, for a few seconds; checks that every complete frame gets
exactly one answer, that every connection is closed by the agent once the client is done,
and that afterwards the agent still answers hello, holds no connection and no bytes, and
the target printed nothing. Usage:  pythonX.Y tests/agent/frame_fuzz.py [-v]
Environment: PEEKA_FUZZ_SEED (replay a run), PEEKA_FUZZ_SECONDS (default 2).
"""
import json
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protocol_selftest as selftest  # noqa: E402  (shares its target and client)
from protocol_selftest import Client, Target, check, raw_connect, wait_for, wrap  # noqa: E402

SECONDS = float(os.environ.get("PEEKA_FUZZ_SECONDS", "2"))
SEED = int(os.environ.get("PEEKA_FUZZ_SEED", str(random.randrange(1 << 30))))
MAX_FRAME = 16 * 1024 * 1024
# "detach" is left out: it would end the agent under test
OPS = ["hello", "load", "call", "cancel", "stats", "nope", "", "HELLO", None, 7, ["hello"]]
KEYS = ["id", "op", "hash", "source", "args", "target", "kind", "name", "command", "libs", "x"]
ANSWER_WAIT = 5.0  # an answer that takes this long is a hung reader, not a slow machine


def random_text(rng):
    alphabet = "ab{}[]\":,\\\x00\x7f\u00e9\u4e2d\U0001f600\ud800"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))


def random_json(rng, depth=0):
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 2 ** 63, -(2 ** 64), rng.randrange(-10 ** 6, 10 ** 6)])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e-300, rng.random()])
    if kind in (4, 5):
        return random_text(rng)
    if kind == 6:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return dict((rng.choice(KEYS + [random_text(rng)]), random_json(rng, depth + 1)) for _ in range(rng.randrange(5)))


def random_request(rng):
    req = dict((rng.choice(KEYS), random_json(rng, 1)) for _ in range(rng.randrange(4)))
    req["op"] = rng.choice(OPS)
    if rng.random() < 0.8:
        req["id"] = rng.randrange(1 << 31)
    return req


def random_body(rng):
    """The body of one complete frame: mostly requests, sometimes anything else."""
    roll = rng.random()
    if roll < 0.6:
        return json.dumps(random_request(rng)).encode()
    if roll < 0.75:
        return json.dumps(random_json(rng)).encode() or b"0"
    if roll < 0.85:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if roll < 0.9:
        depth = rng.choice([100, 5000, 100000])
        return b"[" * depth + b"]" * depth
    if roll < 0.95:
        return b'{"op":"hello","id":' + b"9" * rng.choice([10, 5000, 100000]) + b"}"
    return b"\xef\xbb\xbf" + json.dumps(random_request(rng)).encode()  # a BOM


def frame(body):
    return struct.pack(">I", len(body)) + body


def send_in_pieces(sock, data, rng):
    """Send data cut at random points, sometimes pausing between pieces."""
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 2, 3, 4, 7, 100, 4096, len(data)])
        sock.sendall(data[pos:pos + step])
        pos += step
        if rng.random() < 0.05:
            time.sleep(0.002)


def drain(sock):
    """Every frame the agent sends until it closes; None if it neither answers nor closes."""
    sock.settimeout(ANSWER_WAIT)
    client = wrap(sock)
    frames = []
    try:
        while True:
            msg = client.recv()
            if msg is None:
                return frames
            frames.append(msg)
    except socket.timeout:
        return None
    except (OSError, ValueError):
        return frames  # reset, or a reply cut short by the close: the connection did end


def answer_ok(f):
    """An answer the protocol allows; INTERNAL_ERROR would be a request the agent did not foresee."""
    return isinstance(f, dict) and f.get("type") in ("error", "hello", "stats", "cancelled") and (
        f.get("code") != "INTERNAL_ERROR")


def case_garbage(path, rng):
    """Random bytes, then the client stops sending: the agent must close the connection."""
    data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    return lying_or_garbage(path, data, rng)


def case_lying_header(path, rng):
    """A header announcing some length, followed by fewer (or more) bytes."""
    size = rng.choice([0, 1, 5, 100, 65536, 65537, 1 << 20, MAX_FRAME, MAX_FRAME + 1, 0xFFFFFFFF,
                       rng.randrange(1 << 32)])
    tail = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
    return lying_or_garbage(path, struct.pack(">I", size) + tail, rng)


def lying_or_garbage(path, data, rng):
    sock = raw_connect(path)
    try:
        send_in_pieces(sock, data, rng)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the agent already refused it and closed
    frames = drain(sock)
    sock.close()
    ok = frames is not None and all(answer_ok(f) for f in frames)
    return ok, frames


def case_json_run(path, rng):
    """Several complete frames sent as one stream cut anywhere: one answer per frame."""
    bodies = [random_body(rng) for _ in range(rng.randrange(1, 6))]
    sock = raw_connect(path)
    try:
        send_in_pieces(sock, b"".join(frame(b) for b in bodies), rng)
        sock.shutdown(socket.SHUT_WR)
    except OSError as e:
        sock.close()
        return False, "send failed: %s" % e
    frames = drain(sock)
    sock.close()
    ok = frames is not None and len(frames) == len(bodies) and all(answer_ok(f) for f in frames)
    return ok, {"sent": [b[:80] for b in bodies], "got": frames}


CASES = [case_garbage, case_lying_header, case_json_run, case_json_run]


def main():
    print("frame fuzz on %s, seed %d (PEEKA_FUZZ_SEED to replay), %.1f s" % (sys.version.split()[0], SEED, SECONDS))
    rng = random.Random(SEED)
    t = Target(selftest.TARGET, config={"frame_deadline": 1.0})
    try:
        check(wait_for(lambda: selftest.is_socket(t.sock), 10), "target bootstrapped")
        control = Client(t.sock)
        runs, failed = 0, []
        stop = time.time() + SECONDS
        while time.time() < stop and len(failed) < 3:
            case = rng.choice(CASES)
            ok, detail = case(t.sock, rng)
            runs += 1
            if not ok:
                failed.append((case.__name__, detail))
        print("  %d cases" % runs)
        check(not failed, "every case answered and closed", failed[:1])
        check(control.request("hello")["type"] == "hello", "agent still answers hello after the fuzz")
        settled = wait_for(lambda: control.request("stats")["connections"] == 1, 3.0)
        stats = control.request("stats")
        check(settled and stats["in_flight"] == 0, "no connection nor frame bytes left", stats)
        again = Client(t.sock)
        check(again.request("hello")["type"] == "hello", "a new client is served")
        again.close()
        control.close()
        check(t.proc.poll() is None, "target alive")
        check(t.output() == "", "target printed nothing", t.output()[-2000:])
    finally:
        t.cleanup()
    print("%s: %d failure(s)" % ("FAILED" if selftest.FAILURES else "PASSED", len(selftest.FAILURES)))
    return 1 if selftest.FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
