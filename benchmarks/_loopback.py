"""A loopback server for a benchmark: a Python script run in a child process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def child_server(source: str, stop_timeout: float = 5) -> Iterator[int]:
    """Run ``source``, which prints the port it listens on first, in a child process;
    yield that port and stop the process after."""
    process = subprocess.Popen(
        [sys.executable, "-c", source], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(stop_timeout)


_HTTP_SERVER = """
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

{methods}

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def http_server(methods: str) -> str:
    """The script of a keep-alive HTTP/1.1 server on loopback for :func:`child_server`;
    ``methods`` is its handler's class body (``def do_GET(self): ...``)."""
    return _HTTP_SERVER.format(
        methods=textwrap.indent(textwrap.dedent(methods).strip("\n"), "    ")
    )
