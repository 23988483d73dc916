"""What the middleware captures, ``shadowguard compare`` reads: one format, one URL convention.

A FastAPI service behind the ASGI middleware answers each request twice, as primary and as
its mirrored shadow copy with the same ``x-request-id``; the shadow copy runs a seeded change
on one order in ten. The command, run as a subprocess on the captured SQLite file and on a
JSON-lines folder, pairs every request and finds the change at its field path only.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import shadowguard
from shadowguard import capture
from shadowguard.middleware.asgi import ShadowGuardMiddleware
from tests._cli import json_report, run_shadowguard
from tests.peers.kafka import KafkaBroker

SHADOW = {"x-shadow-request": "1"}
ORDERS = 60


def service(url: str) -> FastAPI:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, Any]:
        total = 10.0 * order_id
        if shadowguard.is_shadow() and order_id % 10 == 0:
            total += 0.01  # the rewrite's rounding change
        return {"id": order_id, "total": total, "items": [{"sku": f"s{order_id}"}]}

    app.add_middleware(ShadowGuardMiddleware, capture=url)  # type: ignore[arg-type]
    return app


async def mirrored_traffic(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
        for i in range(1, ORDERS + 1):
            rid = {"x-request-id": f"rq-{i}"}
            assert (await client.get(f"/orders/{i}", headers=rid)).status_code == 200
            assert (await client.get(f"/orders/{i}", headers={**rid, **SHADOW})).status_code == 200


@pytest.mark.parametrize("scheme", ["sqlite", "jsonl"])
def test_the_compare_command_reads_what_the_middleware_captured(
    tmp_path: Path, scheme: str
) -> None:
    where = tmp_path / ("capture.db" if scheme == "sqlite" else "captures")
    url = f"{scheme}://{where}"
    asyncio.run(mirrored_traffic(service(url)))
    assert capture.flush(timeout=30)
    done = run_shadowguard("compare", url, "--json")
    assert done.returncode == 0, done.stderr
    report = json_report(done)
    assert report["pairs"] == ORDERS
    [route] = report["routes"]
    assert (route["method"], route["route"], route["pairs"]) == (
        "GET",
        "/orders/{order_id}",
        ORDERS,
    )
    assert [(d["path"], d["count"]) for d in route["diffs"]] == [("total", ORDERS // 10)]
    examples = set(route["diffs"][0]["examples"])
    assert examples <= {f"rq-{i}" for i in range(10, ORDERS + 1, 10)}


def test_workers_on_kafka_compare_what_the_middleware_captured(kafka_broker: KafkaBroker) -> None:
    """The same traffic through the Kafka capture sink, compared by two workers in a group."""
    topic = kafka_broker.create_topic("capture", partitions=4)
    url = f"kafka://{kafka_broker.bootstrap}/{topic}"
    asyncio.run(mirrored_traffic(service(url)))
    assert capture.flush(timeout=30)
    capture.close()
    worker = ("compare", url, "--group", topic, "--idle-exit", "4", "--session-timeout", "2")
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda _: run_shadowguard(*worker), range(2)))
    assert [d.returncode for d in done] == [0, 0], [d.stderr for d in done]
    report = json_report(run_shadowguard("compare", "report", url, "--group", topic, "--json"))
    assert report["pairs"] == ORDERS
    assert report["unpaired"] == {"baseline": 0, "candidate": 0}
    [route] = report["routes"]
    assert [(d["path"], d["count"]) for d in route["diffs"]] == [("total", ORDERS // 10)]
