# A stdlib-only WSGI app for the pre-fork tests (tests/processes.test.ts): gunicorn serves it
# with several sync workers, each a forked copy of the master. `handle` is what the tests watch;
# every answer names the worker's pid, so a test knows which worker served it.
import os


def handle(path):
    return "%s %d\n" % (path, os.getpid())


def app(environ, start_response):
    body = handle(environ.get("PATH_INFO", "/")).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
