"""The AWS emulator for the tests: moto's server, handling one request at a time.

moto runs a DynamoDB transaction by copying the tables it touches, applying the writes
and restoring the copies if a condition fails. That is atomic only while no other
request runs: with moto's threaded server, a transaction that fails can restore a copy
taken while another transaction's writes were half applied (and the other way round).
DynamoDB's own transactions are atomic, so the tests run moto with every request
serialised behind one lock. Connections are still served on their own threads, so the
SDKs' keep-alive connections never wait on each other.

Usage: serve.py HOST PORT
"""

import os
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            # The whole response is produced inside the lock.
            return list(app(environ, start_response))

    run_simple(
        host,
        port,
        one_at_a_time,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
