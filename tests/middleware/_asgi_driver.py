"""A minimal in-process ASGI server for one request: it can disconnect like a mirror client.

Like uvicorn, ``receive`` gives the body, then blocks until the client disconnects or the
response is complete, and answers ``http.disconnect`` from then on.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Exchange:
    """One HTTP request driven through an ASGI application."""

    def __init__(
        self,
        app: Any,
        method: str = "GET",
        path: str = "/",
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
    ) -> None:
        self.app = app
        self.body = body
        self.sent: list[dict[str, Any]] = []
        self._body_sent = False
        self._gone = asyncio.Event()
        all_headers = list(headers or [])
        if body:
            all_headers.append((b"content-length", str(len(body)).encode()))
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"orders:8080"), *all_headers],
            "server": ("127.0.0.1", 8080),
            "client": ("127.0.0.1", 5000),
        }
        self.task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        self.task = asyncio.get_running_loop().create_task(
            self.app(self.scope, self._receive, self._send)
        )
        return self.task

    def disconnect(self) -> None:
        """The client goes away (Envoy's mirror timed out)."""
        self._gone.set()

    @property
    def status(self) -> int | None:
        for message in self.sent:
            if message["type"] == "http.response.start":
                return int(message["status"])
        return None

    @property
    def headers(self) -> dict[bytes, bytes]:
        for message in self.sent:
            if message["type"] == "http.response.start":
                return dict(message.get("headers", []))
        return {}

    @property
    def response_body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")

    async def _receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self._gone.set()  # uvicorn: receive() answers http.disconnect once the response is done
