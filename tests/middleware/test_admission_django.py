"""Django admission control, sync (threads, PostgreSQL shadow transactions) and async."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connections
from django.test import AsyncClient, Client, override_settings

from shadowguard import ConfigError
from shadowguard.middleware import _admission
from shadowguard.middleware.django import ShadowGuardMiddleware
from tests.middleware._shed import fresh_gate, new_sheds, shed_counts

# Importing the test app's databases sets Django up with its settings.
from tests.middleware.djangoapp import databases, views
from tests.middleware.djangoapp.databases import Rows

django_databases = databases.django_databases
rows = databases.rows

SHADOW = {"HTTP_X_SHADOW_REQUEST": "1"}


@pytest.fixture(autouse=True)
def _gate(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_gate(monkeypatch)
    views.HOLD.update(started=0, release=threading.Event(), async_release=None)


def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def _get(path: str, shadow: bool) -> tuple[int, str | None]:
    try:
        response = Client().get(path, **(SHADOW if shadow else {}))
        response.close()
        return response.status_code, response.headers.get("x-shadowguard-shed")
    finally:
        connections.close_all()  # this worker thread's connections


@pytest.mark.postgres
def test_sync_burst_of_ten_times_the_limit(rows: Rows, metric_reader: Any) -> None:
    """20 slow shadow requests at limit 2 on threads: 2 run in PostgreSQL shadow
    transactions, 18 get 503 without reaching the view; primaries are all served."""
    before = shed_counts(metric_reader)
    with (
        override_settings(SHADOWGUARD={"max_concurrent_shadow": 2}),
        ThreadPoolExecutor(max_workers=30) as pool,
    ):
        shadows = [pool.submit(_get, f"/slow/s{i}/", True) for i in range(20)]
        until(lambda: sum(f.done() for f in shadows) == 18 and views.HOLD["started"] == 2)
        assert {f.result() for f in shadows if f.done()} == {(503, "limit")}
        primaries = [pool.submit(_get, f"/orders/P-{i}/", False) for i in range(5)]
        assert [f.result()[0] for f in primaries] == [200] * 5
        views.HOLD["release"].set()
        results = sorted((f.result() for f in shadows), key=str)
    assert results == [(200, None)] * 2 + [(503, "limit")] * 18
    assert views.HOLD["started"] == 2
    assert _admission.running() == 0
    assert new_sheds(metric_reader, before) == {"limit": 18}
    assert rows.postgres() == [f"P-{i}" for i in range(5)]


@pytest.mark.postgres
def test_old_shadow_request_is_refused(rows: Rows, caplog: pytest.LogCaptureFixture) -> None:
    old = {"HTTP_X_REQUEST_START": f"t={time.time() - 30:.3f}"}
    response = Client().post("/orders/OLD/", **SHADOW, **old)
    assert response.status_code == 503
    assert response.headers["x-shadowguard-shed"] == "budget"
    assert views.SEEN == []
    # One warning per burst from shadowguard; Django does not log every shed 503 as an error.
    assert [r.name for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == [
        "shadowguard.middleware"
    ]
    assert Client().post("/orders/NEW/", **old).status_code == 200  # the primary: never shed
    assert rows.postgres() == ["NEW"]


@pytest.mark.asyncio
async def test_async_burst_sheds_beyond_the_limit() -> None:
    views.HOLD["async_release"] = asyncio.Event()
    client = AsyncClient()
    headers = {"x-shadow-request": "1"}
    with override_settings(SHADOWGUARD={"max_concurrent_shadow": 2}, SHADOWGUARD_DATABASES=[]):
        shadows = [
            asyncio.create_task(client.get(f"/async-slow/a{i}/", headers=headers))
            for i in range(20)
        ]
        deadline = time.monotonic() + 10
        while not (sum(t.done() for t in shadows) == 18 and views.HOLD["started"] == 2):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert {t.result().status_code for t in shadows if t.done()} == {503}
        views.HOLD["async_release"].set()
        results = await asyncio.gather(*shadows)
    assert sorted(r.status_code for r in results) == [200] * 2 + [503] * 18
    assert _admission.running() == 0


def test_bad_admission_settings_fail_when_django_loads_the_middleware() -> None:
    with (
        override_settings(SHADOWGUARD={"max_concurrent_shadow": -5}),
        pytest.raises(ConfigError, match="max_concurrent_shadow"),
    ):
        ShadowGuardMiddleware(lambda request: None)


@pytest.mark.postgres
def test_streaming_response_holds_its_slot_until_closed(rows: Rows) -> None:
    with override_settings(SHADOWGUARD={"max_concurrent_shadow": 1}):
        response = Client().get("/stream/S/", **SHADOW)
        body = iter(response.streaming_content)
        assert next(body) == b"1,"
        assert _admission.running() == 1
        shed = Client().get("/stream/T/", **SHADOW)
        assert shed.status_code == 503
        response.close()
        assert _admission.running() == 0
    assert rows.postgres() == []
