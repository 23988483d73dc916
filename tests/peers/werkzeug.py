"""Real WSGI servers on 127.0.0.1: werkzeug's threaded server, as ``flask run`` serves."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def wsgi_server() -> Iterator[Callable[[Any], str]]:
    """Factory: ``wsgi_server(app)`` serves ``app`` and returns its base URL; every server
    started is shut down afterwards."""
    from werkzeug.serving import make_server

    servers: list[Any] = []

    def start(app: Any) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
