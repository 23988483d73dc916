"""The demo's order service: a pure ASGI app storing orders with SQLAlchemy in SQLite.

``POST /orders`` (JSON ``{"sku": ..., "quantity": ...}``) inserts a row, then charges the
card and publishes an ``order-created`` event, both ``@shadowguard.side_effect`` functions
that append a line to ``payments.jsonl`` / ``events.jsonl`` in the demo folder. A quantity
below 1 is rejected by the database (``CHECK (quantity > 0)``) and answered 422.
``GET /_demo/stats`` returns what this instance saw, for the demo's report.

Primary and shadow instances share ONE SQLite file on purpose: the misconfiguration the
guard has to make safe. Every row records the instance that wrote it (``served_by``), so the
report can count each side's rows through a separate connection.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from sqlalchemy import CheckConstraint, Integer, String, create_engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import shadowguard
from shadowguard.middleware.asgi import ShadowGuardMiddleware

__all__ = ["Order", "Stats", "build_app", "create_schema", "from_env"]

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


def _engine(folder: Path) -> Any:
    return create_engine(f"sqlite:///{folder / DATABASE}", connect_args={"timeout": BUSY_TIMEOUT})


def create_schema(folder: Path) -> None:
    """Create the database (WAL, so the report's reads never wait for a writer)."""
    engine = _engine(folder)
    try:
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


class OrderService:
    """The application itself, unaware of shadow traffic except through shadowguard."""

    def __init__(self, folder: Path, side: str, stats: Stats) -> None:
        self.folder = folder
        self.side = side
        self.stats = stats
        self.engine = _engine(folder)

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] == "/_demo/stats":
            await _respond(send, 200, self.stats.to_dict())
        elif scope["method"] == "POST" and scope["path"] == "/orders":
            headers = dict(scope.get("headers") or ())
            request_id = headers.get(b"x-request-id", b"").decode() or "-"
            status, payload = self._create_order(await _read_body(receive), request_id)
            self._note_suppressions()
            await _respond(send, status, payload)
        else:
            await _respond(send, 404, {"error": "not found"})

    def _create_order(self, body: bytes, request_id: str) -> tuple[int, dict[str, Any]]:
        try:
            data = json.loads(body)
            sku, quantity = str(data["sku"]), int(data["quantity"])
        except (ValueError, KeyError, TypeError):
            return 400, {"error": "expected JSON {'sku': str, 'quantity': int}"}
        # Blocking SQLite work inside the coroutine: it is short, and the demo serves one
        # request at a time per instance.
        with Session(self.engine) as session:
            row = Order(request_id=request_id, served_by=self.side, sku=sku, quantity=quantity)
            session.add(row)
            try:
                session.commit()
            except IntegrityError as exc:
                return 422, {"error": f"order rejected by the database: {exc.orig}"}
            order = {"order": row.id, "request_id": request_id, "served_by": self.side}
        charge_card(self.folder, {**order, "quantity": quantity})
        publish_event(self.folder, order)
        return 201, order

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
    """Outermost layer: the latency and status of every request, guard included."""

    def __init__(self, app: ASGIApp, stats: Stats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == "/_demo/stats":
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


def build_app(folder: Path, side: str, *, guard: bool = True) -> tuple[ASGIApp, Stats]:
    """The order service for one side (``"primary"`` or ``"shadow"``) and its stats.

    With ``guard`` (the default) the service runs behind ``ShadowGuardMiddleware`` with the
    SQLAlchemy guard installed. Without it, it runs as it would without shadowguard.
    """
    stats = Stats(side)
    app: ASGIApp = OrderService(folder, side, stats)
    if guard:
        shadowguard.install("sqlalchemy")
        app = ShadowGuardMiddleware(app)
    return _Timed(app, stats), stats


def from_env() -> ASGIApp:
    """uvicorn factory (``--factory shadowguard.demo.app:from_env``) for the --envoy mode."""
    folder = Path(os.environ[ENV_DIR])
    guard = os.environ.get(ENV_GUARD, "1") == "1"
    app, _ = build_app(folder, os.environ[ENV_SIDE], guard=guard)
    return app
