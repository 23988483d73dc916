"""Django middleware and ORM guard, against PostgreSQL (psycopg 3) and SQLite."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.middleware.django_settings")

import django

django.setup()

from django.db import connections, transaction  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402

import shadowguard  # noqa: E402
from shadowguard import ConfigError, ShadowSideEffectBlocked, current_scope, shadow  # noqa: E402
from shadowguard.integrations.django import ShadowTransactions, is_write  # noqa: E402
from shadowguard.middleware.django import ShadowGuardMiddleware  # noqa: E402
from tests.middleware._helpers import durations, new_durations  # noqa: E402
from tests.middleware.djangoapp import views  # noqa: E402
from tests.middleware.djangoapp.models import Order  # noqa: E402
from tests.peers.postgres import PG_HOST, PG_PORT, PG_USER  # noqa: E402

SHADOW = {"HTTP_HOST": "orders-shadow"}
pytestmark = pytest.mark.postgres


class Rows:
    """Reads the order table through connections of its own, never Django's."""

    def __init__(self, pg_database: str, sqlite_path: Path) -> None:
        self.pg_database = pg_database
        self.sqlite_path = sqlite_path

    def postgres(self) -> list[str]:
        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=self.pg_database
        ) as conn:
            return sorted(r[0] for r in conn.execute("SELECT ref FROM sg_django_order"))

    def sqlite(self) -> list[str]:
        conn = sqlite3.connect(self.sqlite_path)
        try:
            return sorted(r[0] for r in conn.execute("SELECT ref FROM sg_django_order"))
        finally:
            conn.close()


@pytest.fixture(scope="module")
def django_databases(
    postgres_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rows]:
    from django.conf import settings

    sqlite_path = tmp_path_factory.mktemp("django") / "other.sqlite3"
    settings.DATABASES["default"].update(
        NAME=postgres_database, USER=PG_USER, HOST=PG_HOST, PORT=str(PG_PORT)
    )
    settings.DATABASES["other"]["NAME"] = str(sqlite_path)
    connections.close_all()
    for alias in ("default", "other"):
        connections[alias].settings_dict.update(settings.DATABASES[alias])
        with connections[alias].schema_editor() as editor:
            editor.create_model(Order)
    yield Rows(postgres_database, sqlite_path)
    for alias in ("default", "other"):
        with connections[alias].schema_editor() as editor:
            editor.delete_model(Order)
    connections.close_all()


@pytest.fixture
def rows(django_databases: Rows) -> Iterator[Rows]:
    views.SEEN.clear()
    views.ON_COMMIT.clear()
    yield django_databases
    for alias in ("default", "other"):
        Order.objects.using(alias).all().delete()
    connections.close_all()


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


def test_write_on_a_connection_outside_the_transaction_is_refused(rows: Rows) -> None:
    """A propagated worker thread has its own autocommit connection: its write is blocked."""
    shadowguard.install("django")
    try:
        assert Client().post("/thread/H-1/", **SHADOW).json() == {
            "error": "ShadowSideEffectBlocked"
        }
        assert rows.postgres() == []
        assert Client().post("/thread/H-2/").json() == {"error": None}
        assert rows.postgres() == ["H-2"]
    finally:
        shadowguard.uninstall("django")


def test_shadow_code_outside_a_request(rows: Rows) -> None:
    shadowguard.install("django")
    try:
        with shadow(), pytest.raises(ShadowSideEffectBlocked, match="ShadowTransactions"):
            Order.objects.create(ref="I-1")
        with shadow() as scope, ShadowTransactions():
            Order.objects.create(ref="I-2")
            assert Order.objects.filter(ref="I-2").exists()
        assert scope.counts == {"db.commit": 1}
        assert rows.postgres() == []
        Order.objects.create(ref="I-3")
        assert rows.postgres() == ["I-3"]
    finally:
        shadowguard.uninstall("django")
    with shadow():  # uninstalled: the guard is gone again
        Order.objects.filter(ref="I-3").update(ref="I-4")
    assert rows.postgres() == ["I-4"]


def test_nested_shadow_transactions_keep_the_outer_one(rows: Rows) -> None:
    shadowguard.install("django")
    try:
        with shadow() as scope, ShadowTransactions():
            Order.objects.create(ref="K-1")
            assert Client().post("/durable/K-2/", **SHADOW).json() == {"ok": True}
            Order.objects.create(ref="K-3")  # still inside the outer shadow transaction
            assert Order.objects.filter(ref__startswith="K").count() == 2
        assert scope.counts == {"db.commit": 3}
    finally:
        shadowguard.uninstall("django")
    assert rows.postgres() == []


_INSERT = "INSERT INTO sg_django_order (ref) VALUES ('{}')"


@pytest.mark.parametrize(
    "statement",
    [
        "COMMIT",
        "commit work",
        "/* why */ END",
        "ABORT",
        "ROLLBACK",
        "ROLLBACK AND CHAIN",
        "PREPARE TRANSACTION 'sg'",
        "COMMIT PREPARED 'sg'",
    ],
)
def test_raw_transaction_end_is_refused_at_every_depth(rows: Rows, statement: str) -> None:
    """A raw COMMIT in a shadow transaction would commit its writes: it is refused."""
    shadowguard.install("django")
    try:
        for nested in (False, True):
            with shadow(), ShadowTransactions(), connections["default"].cursor() as cursor:
                cursor.execute(_INSERT.format(f"L-{nested}"))
                with (
                    transaction.atomic() if nested else contextlib.nullcontext(),
                    pytest.raises(ShadowSideEffectBlocked, match="raw transaction"),
                ):
                    cursor.execute(statement)
            assert rows.postgres() == []
    finally:
        shadowguard.uninstall("django")
    with connections["default"].cursor() as cursor:  # primary: the same SQL as written
        cursor.execute(_INSERT.format("L-primary"))
        cursor.execute("BEGIN")
        cursor.execute(_INSERT.format("L-primary-2"))
        cursor.execute("COMMIT")
    assert rows.postgres() == ["L-primary", "L-primary-2"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; " + _INSERT.format("M-1"),
        _INSERT.format("M-1") + "; COMMIT",
        "SELECT ';' /* ; */; " + _INSERT.format("M-1"),
        "SELECT $x$ ' $x$; " + _INSERT.format("M-1") + " -- '",
    ],
)
def test_several_statements_in_one_execute_are_refused(rows: Rows, sql: str) -> None:
    """psycopg binds client-side under Django: a write hidden after a SELECT would run."""
    shadowguard.install("django")
    try:
        blocked = pytest.raises(ShadowSideEffectBlocked, match="2 SQL statements")
        with shadow(), connections["default"].cursor() as cursor, blocked:
            cursor.execute(sql)
        blocked = pytest.raises(ShadowSideEffectBlocked, match="2 SQL statements")
        with shadow(), ShadowTransactions(), connections["default"].cursor() as cursor, blocked:
            cursor.execute(sql)
        assert rows.postgres() == []
        with connections["default"].cursor() as cursor:
            cursor.execute(sql)  # primary
    finally:
        shadowguard.uninstall("django")
    assert rows.postgres() == ["M-1"]


def test_the_shadow_transactions_savepoint_is_not_released_by_raw_sql(rows: Rows) -> None:
    """Under an outer atomic block the shadow transaction is a savepoint: hands off."""
    shadowguard.install("django")
    try:
        with shadow(), transaction.atomic(), ShadowTransactions():
            connection = connections["default"]
            sid = connection.savepoint_ids[-1]
            with connection.cursor() as cursor:
                cursor.execute(_INSERT.format("N-1"))
                with pytest.raises(ShadowSideEffectBlocked, match="savepoint"):
                    cursor.execute(f'RELEASE SAVEPOINT "{sid}"')
                with pytest.raises(ShadowSideEffectBlocked, match="savepoint"):
                    cursor.execute(f"ROLLBACK TO SAVEPOINT {sid.upper()} /* x */")
                with pytest.raises(ShadowSideEffectBlocked, match="savepoint"):
                    cursor.execute(f'RELEASE U&"{sid}"')
                cursor.execute("SAVEPOINT mine")  # a savepoint of its own is fine
                cursor.execute("RELEASE SAVEPOINT mine")
            assert Order.objects.filter(ref="N-1").exists()
    finally:
        shadowguard.uninstall("django")
    assert rows.postgres() == []


def test_is_write_judges_every_statement() -> None:
    assert is_write("SELECT 1; INSERT INTO t VALUES (1)")
    assert not is_write("SELECT ';INSERT'; SELECT 2;")
    assert is_write("   ;  ")


def test_is_write_reads_sql_as_the_vendor_may() -> None:
    """MySQL runs /*! */ comments; a server setting may turn off backslash escapes."""
    assert is_write("SELECT 1 /*! ; DELETE FROM t */", "mysql")
    assert not is_write("SELECT 1 /*! ; DELETE FROM t */", "postgresql")
    assert is_write('SELECT "a\\"; DELETE FROM t; --"', "mysql")
    assert is_write("SELECT 'a\\'; DELETE FROM t; --'", "postgresql")
    assert not is_write("SELECT [a;DELETE] FROM t", "sqlite")
    assert is_write("SELECT [a;DELETE] FROM t")


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


@pytest.mark.parametrize(
    ("sql", "write"),
    [
        ("SELECT 1", False),
        ('  /* c */ (SELECT "x" FROM t FOR UPDATE)', False),
        ("SAVEPOINT s1", False),
        ("RELEASE SAVEPOINT s1", False),
        ("INSERT INTO t VALUES (1)", True),
        ("update t set x = 1", True),
        ("WITH a AS (SELECT 1) SELECT * FROM a", False),
        ("WITH a AS (DELETE FROM t RETURNING *) SELECT * FROM a", True),
        ("EXPLAIN SELECT 1", False),
        ("EXPLAIN ANALYZE DELETE FROM t", True),
        ("CREATE TABLE x (a int)", True),
        ("COPY t FROM STDIN", True),
        ("", True),
    ],
)
def test_is_write_fails_closed(sql: str, write: bool) -> None:
    assert is_write(sql) is write


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
