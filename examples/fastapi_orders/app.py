"""An order service: FastAPI + SQLAlchemy + confluent-kafka + httpx, guarded by shadowguard.

Each ``POST /orders`` stores the order, publishes an ``order-created`` event and calls the
payment provider. Run it twice behind a mirroring proxy (see ``examples/envoy/``): the shadow
copy validates all three and persists none of them.

Settings (environment):
  ORDERS_DATABASE_URL  SQLAlchemy URL (default: sqlite:///orders.db)
  ORDERS_TABLE         table name (default: orders)
  ORDERS_KAFKA         Kafka bootstrap servers; unset: no events
  ORDERS_TOPIC         topic for order events (default: orders)
  ORDERS_PAYMENT_URL   payment provider endpoint; unset: no payment call
  ORDERS_DELAY         seconds to sleep per request (to play a slow rewrite)
plus shadowguard's own (SHADOW_MODE, SHADOWGUARD_MARKER_HEADER, ...).

Run: uvicorn app:app --port 8001   (from this folder)
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import CheckConstraint, DateTime, String, create_engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import shadowguard
from shadowguard.middleware.asgi import ShadowGuardMiddleware

# Guard every channel whose library is importable: SQLAlchemy, confluent-kafka, httpx.
shadowguard.install()

import confluent_kafka  # noqa: E402  (imported after install(): its Producer is the guarded one)

DATABASE_URL = os.environ.get("ORDERS_DATABASE_URL", "sqlite:///orders.db")
TABLE = os.environ.get("ORDERS_TABLE", "orders")
KAFKA = os.environ.get("ORDERS_KAFKA")
TOPIC = os.environ.get("ORDERS_TOPIC", "orders")
PAYMENT_URL = os.environ.get("ORDERS_PAYMENT_URL")
DELAY = float(os.environ.get("ORDERS_DELAY", "0") or 0)


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = TABLE
    __table_args__ = (CheckConstraint("quantity > 0", name=f"{TABLE}_quantity_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int]
    created_at: Mapped[Any] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OrderIn(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int


engine = create_engine(DATABASE_URL)
payments = httpx.Client(timeout=5)
producer = confluent_kafka.Producer({"bootstrap.servers": KAFKA, "linger.ms": 5}) if KAFKA else None
metrics_reader: Any = None

try:  # Optional: expose shadowguard's OpenTelemetry counters at /metrics.
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    metrics_reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[metrics_reader]))
except ImportError:
    pass


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Schema changes belong to the primary; a shadow process (SHADOW_MODE=true) refuses DDL.
    if not shadowguard.is_shadow():
        Base.metadata.create_all(engine)
    yield
    if producer is not None:
        producer.flush(10)
    await asyncio.to_thread(payments.close)


app = FastAPI(title="orders", lifespan=lifespan)
app.add_middleware(ShadowGuardMiddleware)


@app.post("/orders", status_code=201)
def create_order(order: OrderIn, request: Request) -> dict[str, Any]:
    if DELAY:
        time.sleep(DELAY)
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    with Session(engine) as session:
        row = Order(request_id=request_id, sku=order.sku, quantity=order.quantity)
        session.add(row)
        try:
            session.commit()
        except IntegrityError as exc:
            raise HTTPException(422, f"order rejected by the database: {exc.orig}") from None
        created = {"id": row.id, "request_id": request_id, "sku": row.sku, "quantity": row.quantity}
    if producer is not None:
        producer.produce(TOPIC, key=request_id, value=json.dumps(created))
        producer.poll(0)
    if PAYMENT_URL:
        payments.post(PAYMENT_URL, json={"order": created["id"], "amount": order.quantity})
    return created


@app.get("/orders/{order_id}")
def get_order(order_id: int) -> dict[str, Any]:
    with Session(engine) as session:
        row = session.get(Order, order_id)
        if row is None:
            raise HTTPException(404, "no such order")
        return {
            "id": row.id,
            "request_id": row.request_id,
            "sku": row.sku,
            "quantity": row.quantity,
        }


@app.get("/orders")
def count_orders() -> dict[str, int]:
    with Session(engine) as session:
        return {"count": session.scalar(select(func.count()).select_from(Order)) or 0}


@app.get("/metrics")
def suppressed_counts() -> dict[str, Any]:
    """shadowguard.suppressed by kind, shadowguard.request.duration counts by side and
    shadowguard.shadow_shed by reason (shed or cancelled shadow requests)."""
    if metrics_reader is None:
        raise HTTPException(501, "opentelemetry-sdk is not installed")
    suppressed: dict[str, int] = {}
    requests: dict[str, int] = {}
    shed: dict[str, int] = {}
    data = metrics_reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    if metric.name == "shadowguard.suppressed":
                        kind = str(point.attributes["kind"])
                        suppressed[kind] = suppressed.get(kind, 0) + int(point.value)
                    elif metric.name == "shadowguard.request.duration":
                        side = "shadow" if point.attributes.get("shadow") else "primary"
                        requests[side] = requests.get(side, 0) + int(point.count)
                    elif metric.name == "shadowguard.shadow_shed":
                        reason = str(point.attributes["reason"])
                        shed[reason] = shed.get(reason, 0) + int(point.value)
    return {"suppressed": suppressed, "requests": requests, "shed": shed}
