"""A small Flask order service, guarded by shadowguard.

``POST /orders`` writes the order with SQLAlchemy, publishes an event and asks a shipping
API. Mirrored (shadow) requests run the same code: shadowguard's SQLAlchemy guard rolls the
write back, and the event and the shipping call, marked ``@side_effect``, are skipped.

    pip install 'shadowguard[flask,sqlalchemy]'
    cd examples/flask_orders
    ORDERS_DATABASE_URL=sqlite:///orders.db flask --app app run -p 8001
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request

import shadowguard
from shadowguard import side_effect
from shadowguard.middleware.flask import ShadowGuard

logger = logging.getLogger("orders")

metadata = sa.MetaData()
orders = sa.Table(
    "flask_orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
)


@side_effect
def publish_order_created(order_id: int, sku: str, quantity: int) -> None:
    logger.info("order.created %s", json.dumps({"id": order_id, "sku": sku, "qty": quantity}))


@side_effect(returns={"status": "queued"})
def request_shipping(order_id: int) -> dict[str, str]:
    url = os.environ.get("SHIPPING_URL")
    if not url:
        return {"status": "skipped"}
    body = json.dumps({"order_id": order_id}).encode()
    outbound = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(outbound, timeout=5) as response:
        return dict(json.load(response))


def create_app(database_url: str | None = None) -> Flask:
    """Build the service; the database URL defaults to ``ORDERS_DATABASE_URL``."""
    shadowguard.install()  # every guard whose library is installed (SQLAlchemy, ...)
    engine = sa.create_engine(
        database_url or os.environ.get("ORDERS_DATABASE_URL", "sqlite:///orders.db")
    )
    metadata.create_all(engine)
    app = Flask(__name__)
    app.extensions["orders_engine"] = engine
    ShadowGuard(app)

    @app.post("/orders")
    def create_order() -> Any:
        data = request.get_json(force=True)
        with engine.begin() as conn:
            order_id = conn.execute(
                orders.insert().values(sku=str(data["sku"]), quantity=int(data.get("quantity", 1)))
            ).inserted_primary_key[0]
        publish_order_created(order_id, data["sku"], int(data.get("quantity", 1)))
        shipping = request_shipping(order_id)
        return jsonify(id=order_id, shipping=shipping["status"]), 201

    @app.get("/orders/<int:order_id>")
    def get_order(order_id: int) -> Any:
        with engine.connect() as conn:
            row = conn.execute(orders.select().where(orders.c.id == order_id)).first()
        if row is None:
            return jsonify(error="not found"), 404
        return jsonify(id=row.id, sku=row.sku, quantity=row.quantity)

    return app


if __name__ == "__main__":
    create_app().run(port=8001)
