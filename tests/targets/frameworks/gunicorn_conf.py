# gunicorn settings for tests/gevent.test.ts (a settings file: gunicorn ignores names it does not
# know, so one file serves gunicorn 23 on 3.8/3.9 and 27 elsewhere).
bind = "127.0.0.1:0"
workers = 1
worker_class = "gevent"
control_socket_disable = True  # gunicorn 27+: no ~/.gunicorn/gunicorn.ctl shared between runs
