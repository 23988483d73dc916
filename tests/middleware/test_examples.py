"""The example services in examples/, run for real."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

import shadowguard
from shadowguard import integrations
from tests.peers.postgres import PG_HOST, PG_PORT, PG_USER

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load_flask_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "flask_orders_app", EXAMPLES / "flask_orders" / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flask_rows(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return [r[0] for r in conn.execute("SELECT sku FROM flask_orders ORDER BY id")]


def test_flask_orders_primary_writes_and_shadow_skips_side_effects(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="orders")
    example = _load_flask_example()
    try:
        client = example.create_app(f"sqlite:///{tmp_path / 'orders.db'}").test_client()
        shadow = client.post("/orders", json={"sku": "mirrored"}, headers={"Host": "a-shadow"})
        assert shadow.status_code == 201
        assert shadow.json["shipping"] == "queued"  # the @side_effect stand-in answered
        primary = client.post("/orders", json={"sku": "real"})
        assert primary.status_code == 201
        assert primary.json["shipping"] == "skipped"  # really called (no SHIPPING_URL)
    finally:
        shadowguard.uninstall()
    events = [r.getMessage() for r in caplog.records if r.name == "orders"]
    assert len(events) == 1
    assert '"sku": "real"' in events[0]
    assert "real" in _flask_rows(tmp_path / "orders.db")


def test_flask_orders_shadow_writes_no_row(tmp_path: Path) -> None:
    # A missing guard must fail this test, never skip it.
    assert "sqlalchemy" in integrations.INTEGRATIONS
    example = _load_flask_example()
    try:
        client = example.create_app(f"sqlite:///{tmp_path / 'orders.db'}").test_client()
        client.post("/orders", json={"sku": "mirrored"}, headers={"Host": "a-shadow"})
        client.post("/orders", json={"sku": "real"})
    finally:
        shadowguard.uninstall()
    assert _flask_rows(tmp_path / "orders.db") == ["real"]


DJANGO_SCRIPT = """
import json, logging, os, sys
import django
django.setup()
from django.core.management import call_command
from django.test import Client
events = []
class Collect(logging.Handler):
    def emit(self, record):
        events.append(record.getMessage())
logging.getLogger("orders").addHandler(Collect())
logging.getLogger("orders").setLevel(logging.INFO)
call_command("migrate", verbosity=0)
client = Client()
shadow = client.post("/orders", data='{"sku": "ex-mirrored"}', content_type="application/json",
                     HTTP_HOST="orders-shadow")
primary = client.post("/orders", data='{"sku": "ex-real"}', content_type="application/json",
                      HTTP_HOST="orders")
print(json.dumps({"shadow": [shadow.status_code, shadow.json()],
                  "primary": [primary.status_code, primary.json()], "events": events}))
"""


@pytest.mark.postgres
def test_django_orders_against_postgres(postgres_database: str) -> None:
    """The Django example in its own process: the shadow order never reaches PostgreSQL."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "orders_service.settings",
        "ORDERS_PG_NAME": postgres_database,
        "ORDERS_PG_HOST": PG_HOST,
        "ORDERS_PG_PORT": str(PG_PORT),
        "ORDERS_PG_USER": PG_USER,
    }
    env.pop("SHADOW_MODE", None)
    result = subprocess.run(
        [sys.executable, "-c", DJANGO_SCRIPT],
        cwd=EXAMPLES / "django_orders",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["shadow"][0] == 201
    assert out["shadow"][1]["shipping"] == "queued"
    assert out["primary"][0] == 201
    assert out["primary"][1]["shipping"] == "skipped"
    assert len(out["events"]) == 1
    assert '"sku": "ex-real"' in out["events"][0]
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=postgres_database) as c:
        query = "SELECT sku FROM orders_order WHERE sku LIKE 'ex-%' ORDER BY id"
        skus = [r[0] for r in c.execute(query)]
    assert skus == ["ex-real"]
