"""Mirror N requests to a primary and two shadow order services, then check and report.

Requests go out the way a mirroring proxy sends them: the same ``x-request-id`` to every
side, the shadow copies with ``-shadow`` appended to the Host before the port, the primary
first. The shadows are Diffy's pair: ``secondary`` runs the primary's code (the noise),
``candidate`` the rewrite. In-process, each primary request is answered, then its two copies
run, one request at a time: a shadow's transaction (holding SQLite's write lock) is rolled
back before the next request writes. The --envoy mode (``shadowguard.demo.envoy``) sends
them through a real Envoy to three uvicorn processes instead.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from shadowguard.demo import app as service

HOST = "orders.demo:8000"
SHADOW_HOST = "orders.demo-shadow:8000"
SIDES = ("primary", "secondary", "candidate")
SHADOWS = SIDES[1:]
SKUS = tuple(service.PRICES)
INVALID_EVERY = 10  # one request in ten asks for quantity 0: the database rejects it
QUOTE_EVERY = 4  # one request in four is a quote, which stores nothing


@dataclass(frozen=True)
class Request:
    request_id: str
    method: str
    path: str
    query: str
    body: bytes
    sku: str
    quantity: int

    @property
    def is_order(self) -> bool:
        return self.method == "POST"

    @property
    def valid(self) -> bool:
        """An order the database accepts (a quote stores nothing)."""
        return self.is_order and self.quantity > 0


def requests(n: int) -> Iterator[Request]:
    """The demo's traffic: deterministic orders (one in ``INVALID_EVERY`` invalid) and quotes."""
    for i in range(n):
        sku = SKUS[(i // 3) % len(SKUS)]
        request_id = f"demo-{i + 1:05d}"
        if i % QUOTE_EVERY == QUOTE_EVERY - 1:
            quantity = i % 3 + 1
            query = f"sku={sku}&quantity={quantity}"
            yield Request(request_id, "GET", "/quote", query, b"", sku, quantity)
            continue
        quantity = i % 3 + 1 if i % INVALID_EVERY != INVALID_EVERY - 1 else 0
        body = json.dumps({"sku": sku, "quantity": quantity}).encode()
        yield Request(request_id, "POST", "/orders", "", body, sku, quantity)


def seeded_differences(n: int) -> dict[str, set[str]]:
    """The request ids whose ``total`` the candidate computes differently, by route."""
    found: dict[str, set[str]] = {"POST /orders": set(), "GET /quote": set()}
    for request in requests(n):
        if request.is_order and not request.valid:
            continue
        v1 = service.total_cents(request.sku, request.quantity, 1)
        if v1 != service.total_cents(request.sku, request.quantity, 2):
            found[f"{request.method} {request.path}"].add(request.request_id)
    return found


class Progress:
    """A one-line progress bar on a terminal; silent when the stream is not a TTY."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.done = 0

    def advance(self) -> None:
        self.done += 1
        if self.enabled and (self.done == self.total or self.done % max(1, self.total // 50) == 0):
            filled = 30 * self.done // self.total
            bar = "#" * filled + "." * (30 - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


async def _call(app: service.ASGIApp, host: str, request: Request) -> int:
    headers = [(b"host", host.encode()), (b"x-request-id", request.request_id.encode())]
    if request.body:
        headers.append((b"content-type", b"application/json"))
        headers.append((b"content-length", str(len(request.body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": request.query.encode(),
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0
    answered = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            # As a server does: the client stays until it has the whole response.
            await answered.wait()
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": request.body, "more_body": False}

    async def send(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await app(scope, receive, send)
    return status


def run_in_process(
    folder: Path, n: int, *, guard: bool, progress: Progress, capture: str | None = None
) -> dict[str, Any]:
    """Every side in this process, called directly through ASGI; returns the raw stats."""
    service.create_schema(folder)
    apps = {side: service.build_app(folder, side, guard=guard, capture=capture) for side in SIDES}

    async def mirror() -> None:
        for request in requests(n):
            await _call(apps["primary"][0], HOST, request)
            for side in SHADOWS:
                await _call(apps[side][0], SHADOW_HOST, request)
            progress.advance()

    asyncio.run(mirror())
    return {side: stats.to_dict() for side, (_, stats) in apps.items()}
