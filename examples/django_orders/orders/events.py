"""The order service's outbound side effects: an event and a call to the shipping API.

Marked with ``@side_effect``: in shadow traffic they are not called and the suppression is
recorded. (With shadowguard's Kafka and httpx guards installed, the producer and the HTTP
client themselves are guarded too; the marks keep this example self-contained.)
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request

from shadowguard import side_effect

logger = logging.getLogger("orders")


@side_effect
def publish_order_created(order_id: int, sku: str, quantity: int) -> None:
    logger.info("order.created %s", json.dumps({"id": order_id, "sku": sku, "qty": quantity}))


@side_effect(returns={"status": "queued"})
def request_shipping(order_id: int) -> dict[str, str]:
    url = os.environ.get("SHIPPING_URL")
    if not url:
        return {"status": "skipped"}
    body = json.dumps({"order_id": order_id}).encode()
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.load(response))
