# peeka's demo service: a tiny order service with a worker thread.
# The main thread waits in accept() like a web server; a worker computes totals.
import os
import socket
import sys
import threading
import time


class OrderBook:
    def __init__(self):
        self.orders = []

    def add(self, item, qty, price):
        self.orders.append((item, qty, price))
        return self.total()

    def total(self):
        return round(sum(q * p for _, q, p in self.orders), 2)


def worker(book, stop):
    n = 0
    while not stop.is_set():
        n += 1
        book.add("widget-%d" % (n % 7), n % 3 + 1, 9.99)
        if len(book.orders) > 100:
            del book.orders[:50]
        time.sleep(0.05)


def serve(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen()
    print("ready pid=%d port=%d" % (os.getpid(), srv.getsockname()[1]), flush=True)
    while True:
        conn, _ = srv.accept()
        conn.close()


if __name__ == "__main__":
    book = OrderBook()
    stop = threading.Event()
    threading.Thread(target=worker, args=(book, stop), name="order-worker", daemon=True).start()
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
