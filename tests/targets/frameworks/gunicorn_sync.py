# gunicorn settings for tests/processes.test.ts: three sync workers (forked by the master),
# a port the kernel picks (printed in the log).
bind = "127.0.0.1:0"
workers = 3
worker_class = "sync"
control_socket_disable = True  # gunicorn 27+: no ~/.gunicorn/gunicorn.ctl shared between runs
