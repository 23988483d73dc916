"""The shadow of the fault tests: a new version of the order service with a bug in it.

Same table and settings as ``examples/fastapi_orders`` (``ORDERS_DATABASE_URL``,
``ORDERS_TABLE``), shadowguard installed and its ASGI middleware in front. ``FAULT`` picks
the bug of ``POST /orders``:

- ``hang``: it reads the order, then awaits something that never happens;
- ``txn-sleep``: it inserts the order, then sleeps ``FAULT_SECONDS`` inside its transaction
  (a slow call made while holding the row and the UNIQUE index entry);
- unset: it stores the order, as the example does.

``GET /metrics`` answers the shed counts by reason, the shadow requests served and the
shadow requests admitted right now. Run: ``uvicorn tests.e2e.fault_app:app`` from the root.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from fastapi import FastAPI, Request
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert

import shadowguard
from shadowguard.middleware import _admission
from shadowguard.middleware.asgi import ShadowGuardMiddleware

shadowguard.install()
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

FAULT = os.environ.get("FAULT", "")
SECONDS = float(os.environ.get("FAULT_SECONDS", "30"))
engine = create_engine(os.environ["ORDERS_DATABASE_URL"])
orders = Table(
    os.environ["ORDERS_TABLE"],
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("request_id", String(64)),
    Column("sku", String(64)),
    Column("quantity", Integer),
)

api = FastAPI()


if FAULT == "hang":

    @api.post("/orders", status_code=201)
    async def hang(order: dict[str, Any]) -> None:
        await asyncio.Event().wait()  # the body was read: the mirror's disconnect is seen

else:

    @api.post("/orders", status_code=201)
    def create_order(order: dict[str, Any], request: Request) -> dict[str, Any]:
        values = {
            "request_id": request.headers.get("x-request-id", ""),
            "sku": order["sku"],
            "quantity": order["quantity"],
        }
        with engine.connect() as conn, conn.begin():
            order_id = conn.execute(insert(orders).values(values).returning(orders.c.id)).scalar()
            if FAULT == "txn-sleep":
                time.sleep(SECONDS)
        return {"id": order_id, "sku": order["sku"]}


@api.get("/orders")
def ready() -> dict[str, bool]:
    return {"ok": True}


@api.get("/metrics")
def counts() -> dict[str, Any]:
    shed: dict[str, int] = {}
    served = 0
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = point.attributes or {}
                    if metric.name == "shadowguard.shadow_shed":
                        assert isinstance(point, NumberDataPoint)
                        reason = str(attributes["reason"])
                        shed[reason] = shed.get(reason, 0) + int(point.value)
                    elif metric.name == "shadowguard.request.duration" and attributes.get("shadow"):
                        assert isinstance(point, HistogramDataPoint)
                        served += int(point.count)
    return {"shed": shed, "requests": {"shadow": served}, "running": _admission.running()}


app = ShadowGuardMiddleware(api)
