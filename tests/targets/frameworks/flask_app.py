# A small Flask app for tests/gevent.test.ts, served by gunicorn with gevent workers:
#   python -m gunicorn -k gevent -w 1 -b 127.0.0.1:0 --chdir tests/targets/frameworks flask_app:app
import time

from flask import Flask

app = Flask(__name__)


@app.route("/hello/<name>")
def hello(name):
    time.sleep(0.001)  # gevent's sleep in a worker: the request greenlet yields to the hub
    return "hello %s\n" % name
