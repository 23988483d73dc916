"""The demo's order service: a pure ASGI app storing orders with SQLAlchemy in SQLite.

``POST /orders`` (JSON ``{"sku": ..., "quantity": ...}``) inserts a row, then charges the
card and publishes an ``order-created`` event, both ``@shadowguard.side_effect`` functions
that append a line to ``payments.jsonl`` / ``events.jsonl`` in the demo folder. A quantity
below 1 is rejected by the database (``CHECK (quantity > 0)``) and answered 422.
``GET /quote?sku=...&quantity=...`` prices an order without storing it. ``GET /_demo/stats``
returns what this instance saw, for the demo's report.

Two versions of the code run: version 1 (the primary, and the ``secondary`` that measures
noise) and version 2, the ``candidate``, a rewrite with two seeded changes: it rounds the tax
half-to-even instead of half-up (one cent off on a small share of orders) and its quote
makes an extra lookup (``QUOTE_REGRESSION`` seconds slower). Answers carry a generated id
and a timestamp, which differ between any two runs: the noise the comparison cancels.

Every instance shares ONE database on purpose: the misconfiguration the guard has to make
safe. Every row records the instance that wrote it (``served_by``), so the report can count
each side's rows through a separate connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import CheckConstraint, Integer, String, create_engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import shadowguard
from shadowguard.capture import CaptureSettings
from shadowguard.middleware.asgi import ShadowGuardMiddleware

__all__ = ["Order", "Stats", "build_app", "create_schema", "from_env", "total_cents"]

ASGIScope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, Receive, Send], Awaitable[None]]

# Seconds a connection waits for SQLite's write lock. A shadow transaction holds it from its
# INSERT until the guard rolls back at the end of the request, so a primary writing at the
# same moment (the --envoy mode, two processes) waits for that instead of failing.
BUSY_TIMEOUT = 15.0

# The settings ``from_env`` reads (the --envoy mode starts each side under uvicorn).
ENV_DIR = "SHADOWGUARD_DEMO_DIR"
ENV_SIDE = "SHADOWGUARD_DEMO_SIDE"
ENV_GUARD = "SHADOWGUARD_DEMO_GUARD"
ENV_VERSION = "SHADOWGUARD_DEMO_VERSION"
ENV_DATABASE = "SHADOWGUARD_DEMO_DATABASE"  # a SQLAlchemy URL; default: the folder's SQLite

#: The version of the code each side runs (Diffy's set-up: see docs/comparing.md).
VERSIONS = {"primary": 1, "secondary": 1, "candidate": 2}
PRICES = {"tea": 250, "coffee": 320, "cocoa": 199, "mate": 360}  # cents
TAX = Decimal("0.05")
QUOTE_REGRESSION = 0.015  # seconds the candidate's quote spends on its extra lookup

DATABASE = "orders.db"
PAYMENTS = "payments.jsonl"
EVENTS = "events.jsonl"


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))
    served_by: Mapped[str] = mapped_column(String(16))
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)


def total_cents(sku: str, quantity: int, version: int) -> int:
    """The order's total with tax, in cents; version 2 rounds the tax half-to-even."""
    net = PRICES.get(sku, 100) * quantity
    rounding = ROUND_HALF_UP if version == 1 else ROUND_HALF_EVEN
    return net + int((net * TAX).quantize(Decimal(1), rounding=rounding))


def _engine(folder: Path, database: str | None = None) -> Any:
    if database is not None:
        return create_engine(database)
    return create_engine(f"sqlite:///{folder / DATABASE}", connect_args={"timeout": BUSY_TIMEOUT})


def create_schema(folder: Path, database: str | None = None) -> None:
    """Create the orders table (on SQLite in WAL mode, so the report's reads never wait)."""
    engine = _engine(folder, database)
    try:
        if database is None:
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        Base.metadata.create_all(engine)
    finally:
        engine.dispose()


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")


@shadowguard.side_effect
def charge_card(folder: Path, order: dict[str, Any]) -> None:
    """The payment: in a real service, a call to the payment provider."""
    _append(folder / PAYMENTS, {"amount": order["quantity"] * 5, **order})


@shadowguard.side_effect
def publish_event(folder: Path, order: dict[str, Any]) -> None:
    """The ``order-created`` event: in a real service, a message on a broker."""
    _append(folder / EVENTS, {"type": "order-created", **order})


class Stats:
    """What one instance saw: statuses, latencies, suppressions and validation errors."""

    def __init__(self, side: str) -> None:
        self.side = side
        self._lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.suppressed: Counter[str] = Counter()
        self.validation_errors: Counter[str] = Counter()

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "side": self.side,
                "requests": sum(self.statuses.values()),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "latencies": list(self.latencies),
                "suppressed": dict(sorted(self.suppressed.items())),
                "validation_errors": dict(self.validation_errors),
            }


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def _respond(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop; answering lets the middleware flush capture at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class OrderService:
    """The application itself, unaware of shadow traffic except through shadowguard."""

    def __init__(
        self, folder: Path, side: str, stats: Stats, version: int, database: str | None
    ) -> None:
        self.folder = folder
        self.side = side
        self.stats = stats
        self.version = version
        self.engine = _engine(folder, database)

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "GET" and path == "/_demo/stats":
            await _respond(send, 200, self.stats.to_dict())
        elif method == "POST" and path == "/orders":
            headers = dict(scope.get("headers") or ())
            request_id = headers.get(b"x-request-id", b"").decode() or "-"
            status, payload = self._create_order(await _read_body(receive), request_id)
            self._note_suppressions()
            await _respond(send, status, payload)
        elif method == "GET" and path == "/quote":
            status, payload = await self._quote(scope.get("query_string", b""))
            await _respond(send, status, payload)
        else:
            await _respond(send, 404, {"error": "not found"})

    def _create_order(self, body: bytes, request_id: str) -> tuple[int, dict[str, Any]]:
        try:
            data = json.loads(body)
            sku, quantity = str(data["sku"]), int(data["quantity"])
        except (ValueError, KeyError, TypeError):
            return 400, {"error": "expected JSON {'sku': str, 'quantity': int}"}
        # Blocking database work inside the coroutine: it is short, and the demo serves one
        # request at a time per instance.
        with Session(self.engine) as session:
            row = Order(request_id=request_id, served_by=self.side, sku=sku, quantity=quantity)
            session.add(row)
            try:
                session.commit()
            except IntegrityError as exc:
                reason = str(exc.orig).splitlines()[0]
                return 422, {"error": f"order rejected by the database: {reason}"}
            order = {"order": row.id, "request_id": request_id, "served_by": self.side}
        charge_card(self.folder, {**order, "quantity": quantity})
        publish_event(self.folder, order)
        total = total_cents(sku, quantity, self.version)
        return 201, {
            "order": order["order"],
            "sku": sku,
            "quantity": quantity,
            "total": total / 100,
            "created_at": datetime.now(timezone.utc).isoformat(),
        }

    async def _quote(self, query: bytes) -> tuple[int, dict[str, Any]]:
        fields = parse_qs(query.decode("latin-1"))
        try:
            sku, quantity = fields["sku"][0], int(fields["quantity"][0])
        except (KeyError, ValueError):
            return 400, {"error": "expected ?sku=...&quantity=..."}
        if self.version == 2:
            await asyncio.sleep(QUOTE_REGRESSION)  # the rewrite's extra lookup
        return 200, {
            "sku": sku,
            "quantity": quantity,
            "total": total_cents(sku, quantity, self.version) / 100,
            "quoted_at": datetime.now(timezone.utc).isoformat(),
        }

    def _note_suppressions(self) -> None:
        scope = shadowguard.current_scope()
        if scope is None:
            return
        with self.stats._lock:
            self.stats.suppressed.update(scope.counts)
            for suppression in scope.suppressed:
                if suppression.error is not None:
                    error = suppression.error
                    message = str(getattr(error, "orig", None) or error).splitlines()[0]
                    self.stats.validation_errors[f"{type(error).__name__}: {message}"] += 1


class _Timed:
    """Outermost layer: the latency and status of every request, guard included.

    ``GET /_demo/stats`` goes straight to the service, past the middleware: the demo's own
    polling is neither timed nor captured.
    """

    def __init__(self, app: ASGIApp, service: ASGIApp, stats: Stats) -> None:
        self.app = app
        self.service = service
        self.stats = stats

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") == "/_demo/stats":
            await self.service(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, observe)
        finally:
            elapsed = time.perf_counter() - start
            with self.stats._lock:
                self.stats.statuses[status] += 1
                self.stats.latencies.append(elapsed)


def build_app(
    folder: Path,
    side: str,
    *,
    guard: bool = True,
    capture: str | None = None,
    database: str | None = None,
) -> tuple[ASGIApp, Stats]:
    """The order service for one side (``primary``, ``secondary`` or ``candidate``).

    With ``guard`` (the default) the service runs behind ``ShadowGuardMiddleware`` with the
    SQLAlchemy guard installed, capturing each request to ``capture`` (a capture URL)
    labelled with ``side``. Without it, it runs as it would without shadowguard.
    """
    stats = Stats(side)
    app: ASGIApp = OrderService(folder, side, stats, VERSIONS[side], database)
    inner = app
    if guard:
        shadowguard.install("sqlalchemy")
        options = None if capture is None else CaptureSettings(url=capture, label=side)
        # No admission limit: the demo pairs every request, so no copy may be shed, even
        # when a loaded machine lets a shadow fall behind (docs/protecting-the-primary.md).
        app = ShadowGuardMiddleware(
            app,
            capture=options if options is not None else False,
            max_concurrent_shadow=None,
        )
    return _Timed(app, inner, stats), stats


def from_env() -> ASGIApp:
    """uvicorn factory (``--factory shadowguard.demo.app:from_env``) for the --envoy mode."""
    folder = Path(os.environ[ENV_DIR])
    guard = os.environ.get(ENV_GUARD, "1") == "1"
    capture = os.environ.get("SHADOWGUARD_CAPTURE") or None
    database = os.environ.get(ENV_DATABASE) or None
    side = os.environ[ENV_SIDE]
    app, _ = build_app(folder, side, guard=guard, capture=capture, database=database)
    return app
