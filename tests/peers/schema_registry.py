"""A Schema Registry on 127.0.0.1 for the two calls a serializer makes: register and look up.

It keeps the schemas registered under each subject and every register or look-up
request, in order, so a test can prove which calls reached the registry.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeSchemaRegistry:
    """The registry's address (``url``), its schemas, and the requests that reached it."""

    def __init__(self) -> None:
        self.schemas: dict[str, str] = {}
        #: ``("register" | "lookup", subject)`` per request, in order.
        self.requests: list[tuple[str, str]] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.registry = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSchemaRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: FakeSchemaRegistry


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        registry = self.server.registry
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        path = self.path.split("?")[0]
        subject = path.split("/")[2]
        registering = path.endswith("/versions")
        registry.requests.append(("register" if registering else "lookup", subject))
        if registering:
            registry.schemas[subject] = body["schema"]
            self._reply(200, {"id": 7})
        elif registry.schemas.get(subject) == body["schema"]:
            self._reply(200, {"subject": subject, "id": 7, "version": 1, "schema": body["schema"]})
        else:
            self._reply(404, {"error_code": 40403, "message": "Schema not found"})

    def do_GET(self) -> None:  # subject-name associations: a read, not recorded
        self._reply(404, {"error_code": 40401, "message": "Not found"})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
