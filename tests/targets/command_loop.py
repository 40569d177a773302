# The test targets' command loop (target.py, heartbeat.py, app.py): a TCP socket on 127.0.0.1 whose
# every connection carries one command and gets one answer. The calling thread spends its time
# blocked in accept() (a plain waiting system call, as a server's main thread) and handles each
# command in its own frame (a generator: the loop is not among the callers a test sees).
import os
import socket


def commands(backlog=8, size=64):
    """Prints "ready <pid> <port>" (what tests/helpers/env.ts waits for), then yields for every
    connection (the bytes received, at most `size`; a function sending the answer's bytes); the
    connection is closed when the next command is asked for. Never ends."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(backlog)
    print("ready %d %d" % (os.getpid(), srv.getsockname()[1]), flush=True)
    while True:
        conn, _ = srv.accept()
        try:
            yield conn.recv(size), conn.sendall
        finally:
            conn.close()
