"""Django middleware against PostgreSQL (psycopg 3) and SQLite: shadow requests commit nothing.

The ORM guard's own tests (the execute wrapper, ShadowTransactions, is_write) are in
tests/integrations/test_django.py.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.db import connections
from django.test import AsyncClient, Client, override_settings

from shadowguard import ConfigError, current_scope, shadow
from shadowguard.middleware.django import ShadowGuardMiddleware
from tests.middleware._helpers import durations, new_durations

# Importing the test app's databases sets Django up with its settings.
from tests.middleware.djangoapp import databases, views
from tests.middleware.djangoapp.databases import Rows

django_databases = databases.django_databases
rows = databases.rows

SHADOW = {"HTTP_HOST": "orders-shadow"}
pytestmark = pytest.mark.postgres


def test_shadow_request_commits_nothing_on_any_alias(rows: Rows) -> None:
    """Writes are validated and readable within the request, then rolled back everywhere."""
    response = Client().post("/orders/A-1/", **SHADOW)
    assert response.json() == {"seen": 1, "seen_other": 1, "duplicate_rejected": True}
    assert rows.postgres() == []
    assert rows.sqlite() == []
    assert views.ON_COMMIT == []
    (_, was_shadow, scope) = views.SEEN[0]
    assert was_shadow
    # One autocommit write per alias would have committed; the failed atomic block not.
    assert scope.counts == {"db.commit": 2}, scope.suppressed
    assert sorted(s.target for s in scope.suppressed) == ["default", "other"]
    assert current_scope() is None

    response = Client().post("/orders/A-2/")
    assert response.json() == {"seen": 1, "seen_other": 1, "duplicate_rejected": True}
    assert rows.postgres() == ["A-2"]
    assert rows.sqlite() == ["A-2"]
    assert views.ON_COMMIT == ["A-2"]
    assert views.SEEN[1] == ("view", False, None)


def test_atomic_block_is_one_suppressed_commit(rows: Rows) -> None:
    scopes: list[Any] = []
    with shadow("test") as outer:
        assert Client().post("/atomic/B/", HTTP_X_SHADOW_REQUEST="1").json() == {"n": 2}
        scopes.append(outer)
    assert outer.counts == {"db.commit": 1}
    assert outer.suppressed[0].detail["atomic"] is True
    assert rows.postgres() == []
    assert views.ON_COMMIT == []

    assert Client().post("/atomic/C/").json() == {"n": 2}
    assert rows.postgres() == ["C-1", "C-2"]
    assert views.ON_COMMIT == ["C"]


def test_durable_block_runs_in_shadow_and_commits_nothing(rows: Rows) -> None:
    assert Client().post("/durable/D-1/", **SHADOW).json() == {"ok": True}
    assert rows.postgres() == []
    assert Client().post("/durable/D-2/").json() == {"ok": True}
    assert rows.postgres() == ["D-2"]


def test_streaming_body_writes_inside_the_shadow_transaction(rows: Rows) -> None:
    response = Client().get("/stream/S/", **SHADOW)
    # Later chunks see the rows earlier chunks wrote, in the same rolled-back transaction.
    assert b"".join(response.streaming_content) == b"1,2,3,"
    response.close()
    assert [s for _, s, _ in views.SEEN] == [True, True, True]
    assert views.SEEN[0][2].counts == {"db.commit": 3}
    assert rows.postgres() == []
    assert current_scope() is None

    response = Client().get("/stream/T/")
    assert b"".join(response.streaming_content) == b"1,2,3,"
    response.close()
    assert rows.postgres() == ["T-0", "T-1", "T-2"]


def test_streaming_body_never_iterated_still_ends_the_request(
    rows: Rows, metric_reader: Any
) -> None:
    """HEAD drops the body unread: closing the response still rolls back and records."""
    before = durations(metric_reader)
    response = Client().head("/stream/U/", **SHADOW)
    response.close()
    added = new_durations(before, durations(metric_reader))
    assert added == {
        (
            ("http.response.status_code", 200),
            ("http.route", "stream/<str:ref>/"),
            ("shadow", True),
        ): 1
    }
    assert not connections["default"].in_atomic_block
    assert rows.postgres() == []


def test_generator_cleanup_of_a_body_read_in_part_stays_shadow(rows: Rows) -> None:
    response = Client().get("/stream-cleanup/X/", **SHADOW)
    assert next(iter(response.streaming_content)) == b"first,"
    response.close()  # the client went away: Django closes the view's generator
    assert [(w, s) for w, s, _ in views.SEEN] == [("cleanup", True)]
    assert rows.postgres() == []

    response = Client().get("/stream-cleanup/Y/")
    assert next(iter(response.streaming_content)) == b"first,"
    response.close()
    assert rows.postgres() == ["Y-cleanup"]


@pytest.mark.asyncio
async def test_async_view_and_async_stream(rows: Rows) -> None:
    client = AsyncClient()
    # (AsyncClient always sends its own Host header: the marker header marks shadow here.)
    response = await client.post("/async/E-1/", headers={"x-shadow-request": "1"})
    assert response.json() == {"seen": 1}
    response = await client.get("/async-stream/F/", headers={"x-shadow-request": "1"})
    assert [chunk async for chunk in response.streaming_content] == [b"x", b"x"]
    assert [s for _, s, _ in views.SEEN] == [True, True, True]
    assert rows.postgres() == []

    response = await client.post("/async/E-2/")
    assert response.json() == {"seen": 1}
    response = await client.get("/async-stream/G/")
    assert [chunk async for chunk in response.streaming_content] == [b"x", b"x"]
    assert rows.postgres() == ["E-2", "G-0", "G-1"]


def test_histogram_has_the_django_route(rows: Rows, metric_reader: Any) -> None:
    before = durations(metric_reader)
    Client().post("/durable/J-1/", **SHADOW)
    Client().post("/durable/J-2/")
    added = new_durations(before, durations(metric_reader))
    route = ("http.route", "durable/<str:ref>/")
    assert added == {
        (("http.response.status_code", 200), route, ("shadow", True)): 1,
        (("http.response.status_code", 200), route, ("shadow", False)): 1,
    }


def test_bad_settings_fail_when_django_loads_the_middleware() -> None:
    with (
        override_settings(SHADOWGUARD={"mode": "sometimes"}),
        pytest.raises(ConfigError, match="mode"),
    ):
        ShadowGuardMiddleware(lambda request: None)


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
def test_under_a_real_asgi_server(rows: Rows, caplog: pytest.LogCaptureFixture) -> None:
    """Django's own ASGI handler under uvicorn: async and sync views, streaming included."""
    import threading
    import time
    import urllib.request

    import uvicorn
    from django.core.asgi import get_asgi_application

    server = uvicorn.Server(
        uvicorn.Config(
            get_asgi_application(), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]

    def fetch(path: str, host: str) -> bytes:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", method="POST" if "orders" in path else "GET"
        )
        request.add_header("Host", host)
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())

    try:
        caplog.set_level(logging.WARNING, logger="shadowguard")
        for host in ("orders-shadow", "orders"):
            prefix = "V" if host == "orders" else "W"
            assert json.loads(fetch(f"/orders/{prefix}-1/", host))["seen"] == 1
            assert json.loads(fetch(f"/async/{prefix}-2/", host)) == {"seen": 1}
            assert fetch(f"/stream/{prefix}S/", host) == b"1,2,3,"
            assert fetch(f"/async-stream/{prefix}A/", host) == b"xx"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert rows.postgres() == ["V-1", "V-2", "VA-0", "VA-1", "VS-0", "VS-1", "VS-2"]
    assert rows.sqlite() == ["V-1"]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("shadowguard")] == []
