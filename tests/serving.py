"""A server of the tests (the gateway over HTTP, a fake provider) served on a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from socketserver import BaseServer

# How often a serving thread looks for `shutdown`: the standard library's half a second would
# be added to every test that stops a server.
POLL_SECONDS = 0.05


def serve_in_thread(server: BaseServer) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True
    )
    thread.start()
    return thread


@contextmanager
def serving(server: BaseServer) -> Iterator[None]:
    """`server` answers until the block ends; then it is stopped and its socket closed."""
    thread = serve_in_thread(server)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
