# peeka's demo service: a tiny shop, saved as shop.py and run as `import shop; shop.main()`
# (so its functions are shop.*). The main thread serves checkout requests
# (waiting in accept() like a web server); a worker thread books orders; a client thread sends a
# request every 100 ms. Each request's handler calls a slow child (a pretend carrier's rate).
#
# It stops cleanly (atexit runs: an agent still inside removes its files, the service its folder)
# on SIGTERM, or when its stdin closes: peeka demo holds the other end, so a demo that dies
# leaves nothing behind.
# Ctrl-C is left to peeka demo, which detaches first.
import atexit
import os
import shutil
import signal
import socket
import sys
import threading
import time


class OrderBook:
    def __init__(self):
        self.orders = []

    def add(self, item, qty, price):
        self.orders.append((item, qty, price))
        if len(self.orders) > 100:
            del self.orders[:50]
        return self.total()

    def total(self):
        amount = 0.0
        for _, qty, price in list(self.orders):
            amount += qty * price
        return round(amount, 2)


def book_orders(book):
    n = 0
    while True:
        n += 1
        book.add("widget-%d" % (n % 7), n % 3 + 1, 9.99)
        time.sleep(0.05)


def quote_shipping(subtotal):
    """The slow child: asks a (pretend) carrier for its rate."""
    time.sleep(0.03)
    return 0.0 if subtotal > 500 else 4.99


def checkout(book):
    subtotal = book.total()
    return subtotal, quote_shipping(subtotal)


def handle_request(conn, book):
    conn.recv(64)
    subtotal, shipping = checkout(book)
    conn.sendall(b"subtotal=%.2f shipping=%.2f\n" % (subtotal, shipping))


def send_requests(port):
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port)) as conn:
                conn.sendall(b"GET /checkout\n")
                conn.recv(64)
        except OSError:
            pass
        time.sleep(0.1)


def stop_when_stdin_closes():
    while sys.stdin.buffer.read(1024):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main(folder=None):
    """Serves until SIGTERM or the end of stdin; then removes `folder` (peeka demo's copy)."""
    if folder:
        atexit.register(shutil.rmtree, folder, True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    book = OrderBook()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    for target, args, name in [(book_orders, (book,), "order-worker"),
                               (send_requests, (port,), "client"),
                               (stop_when_stdin_closes, (), "stdin-watch")]:
        threading.Thread(target=target, args=args, name=name, daemon=True).start()
    print("ready pid=%d port=%d" % (os.getpid(), port), flush=True)
    while True:
        conn, _ = srv.accept()
        with conn:
            handle_request(conn, book)


if __name__ == "__main__":
    main()
