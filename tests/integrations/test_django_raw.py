"""The raw driver connection (``connection.connection``) under a shadow transaction.

psycopg 3 (PostgreSQL), sqlite3 and PyMySQL (MariaDB): whatever ends, escapes or bypasses
the shadow transaction through the driver is refused, and the shadow's rows are absent
afterwards, read through a connection of the test's own. As primary the same calls work.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.middleware.django_settings")

import django

django.setup()

from django.db import connections, transaction  # noqa: E402
from django.test import Client  # noqa: E402

from shadowguard import ShadowSideEffectBlocked, shadow  # noqa: E402
from shadowguard.integrations.django import ShadowTransactions  # noqa: E402
from tests.middleware.djangoapp import databases  # noqa: E402
from tests.middleware.djangoapp.databases import MARIADB, MariaRows, Rows  # noqa: E402
from tests.middleware.djangoapp.models import Order  # noqa: E402

SINK = "django"
pytestmark = pytest.mark.postgres

django_databases = databases.django_databases
rows = databases.rows
mariadb_orders = databases.mariadb_orders
mariadb = databases.mariadb

_INSERT = "INSERT INTO sg_django_order (ref) VALUES ('{}')"
Escape = Callable[[Any], object]


def _raw(alias: str) -> Any:
    return connections[alias].connection


def _cursor_execute(sql: str) -> Escape:
    def escape(raw: Any) -> object:
        cursor = raw.cursor()
        try:
            return cursor.execute(sql)
        finally:
            cursor.close()

    return escape


def _set(name: str, value: object) -> Escape:
    return lambda raw: setattr(raw, name, value)


def _exit_context(raw: Any) -> object:
    with raw:  # psycopg and sqlite3 commit when the block ends
        return None


COMMON: dict[str, Escape] = {
    "commit": lambda raw: raw.commit(),
    "rollback": lambda raw: raw.rollback(),
    "cursor COMMIT": _cursor_execute("COMMIT"),
    "cursor commit (lower case, comment)": _cursor_execute("/* x */ commit"),
    "cursor ROLLBACK": _cursor_execute("ROLLBACK"),
}
ESCAPES: dict[str, dict[str, Escape]] = {
    "default": {
        **COMMON,
        "autocommit = True": _set("autocommit", True),
        "set_autocommit(True)": lambda raw: raw.set_autocommit(True),
        "execute COMMIT": lambda raw: raw.execute("COMMIT"),
        "execute bytes COMMIT": lambda raw: raw.execute(b"COMMIT"),
        "with connection:": _exit_context,
        "tpc_begin": lambda raw: raw.tpc_begin("sg-raw"),
    },
    "other": {
        **COMMON,
        "isolation_level = None": _set("isolation_level", None),
        "execute COMMIT": lambda raw: raw.execute("COMMIT"),
        "executescript": lambda raw: raw.executescript("SELECT 1"),
        "with connection:": _exit_context,
    },
    MARIADB: {
        **COMMON,
        "autocommit(True)": lambda raw: raw.autocommit(True),
        "begin()": lambda raw: raw.begin(),
        "query COMMIT": lambda raw: raw.query("COMMIT"),
        "cursor BEGIN": _cursor_execute("BEGIN"),
        "ping(reconnect=True)": lambda raw: raw.ping(reconnect=True),
    },
}
CASES = [(alias, name) for alias, escapes in ESCAPES.items() for name in escapes]


@contextlib.contextmanager
def _alias(alias: str, request: pytest.FixtureRequest) -> Iterator[Callable[[], list[str]]]:
    """The alias ready to use, and a reader of its order table through another connection."""
    if alias == MARIADB:
        oracle: MariaRows = request.getfixturevalue("mariadb")
        yield oracle.orders
    else:
        found: Rows = request.getfixturevalue("rows")
        yield found.postgres if alias == "default" else found.sqlite


@pytest.mark.parametrize(("alias", "name"), CASES, ids=[f"{a}-{n}" for a, n in CASES])
@pytest.mark.usefixtures("installed")
def test_the_raw_driver_connection_cannot_end_the_shadow_transaction(
    request: pytest.FixtureRequest, alias: str, name: str
) -> None:
    """Each escape is refused; the shadow's row is rolled back with its transaction."""
    escape = ESCAPES[alias][name]
    with _alias(alias, request) as orders:
        with shadow() as scope, ShadowTransactions(using=[alias]):
            Order.objects.using(alias).create(ref="shadow-1")
            with pytest.raises(ShadowSideEffectBlocked, match="shadow"):
                escape(_raw(alias))
            Order.objects.using(alias).create(ref="shadow-2")
        assert orders() == []
        (blocked,) = [s for s in scope.suppressed if s.blocked]
        assert blocked.detail["database"] == alias


@pytest.mark.parametrize("alias", ["default", "other", MARIADB])
def test_as_primary_the_raw_driver_connection_commits(
    request: pytest.FixtureRequest, alias: str
) -> None:
    """Primary code keeps every driver call as written, guard installed or not."""
    import shadowguard

    with _alias(alias, request) as orders:
        shadowguard.install("django")
        try:
            connection = connections[alias]
            connection.ensure_connection()
            connection.set_autocommit(False)
            try:
                Order.objects.using(alias).create(ref="primary-1")
                _raw(alias).commit()
            finally:
                connection.set_autocommit(True)
            with ShadowTransactions(using=[alias]):  # no shadow scope: nothing held
                Order.objects.using(alias).create(ref="primary-2")
                _cursor_execute("COMMIT")(_raw(alias))
        finally:
            shadowguard.uninstall("django")
        assert orders() == ["primary-1", "primary-2"]


@pytest.mark.usefixtures("installed")
def test_psycopg_transaction_block_first_in_the_request_stays_inside(rows: Rows) -> None:
    """``conn.transaction()`` on an idle connection would BEGIN and COMMIT on its own."""
    with shadow(), ShadowTransactions(using=["default"]):
        raw = _raw("default")
        with raw.transaction():
            raw.execute(_INSERT.format("T-1"))
        assert Order.objects.filter(ref="T-1").exists()
    assert rows.postgres() == []


@pytest.mark.usefixtures("installed")
def test_raw_cursor_writes_stay_inside_and_are_recorded(rows: Rows) -> None:
    with shadow() as scope, ShadowTransactions(using=["default", "other"]):
        for alias in ("default", "other"):
            _cursor_execute(_INSERT.format(f"W-{alias}"))(_raw(alias))
            assert Order.objects.using(alias).filter(ref=f"W-{alias}").exists()
    assert rows.postgres() == []
    assert rows.sqlite() == []
    assert [s.detail["database"] for s in scope.suppressed] == ["default", "other"]
    assert all(not s.blocked and s.detail["autocommit"] for s in scope.suppressed)


@pytest.mark.parametrize(
    "escape",
    [
        pytest.param(lambda c: c.execute(b"COMMIT"), id="bytes"),
        pytest.param(lambda c: c.execute(__import__("psycopg").sql.SQL("COMMIT")), id="sql.SQL"),
        pytest.param(lambda c: c.copy("COPY sg_django_order FROM STDIN"), id="copy"),
        pytest.param(lambda c: c.execute(object()), id="unreadable"),
    ],
)
@pytest.mark.usefixtures("installed")
def test_sql_django_cannot_read_as_text_is_refused(
    rows: Rows, escape: Callable[[Any], object]
) -> None:
    """bytes and psycopg ``sql.SQL`` are read as the driver sends them; COPY through the
    cursor's ``copy()`` (no execute wrapper sees it) is judged; anything else is refused."""
    with shadow(), ShadowTransactions(), connections["default"].cursor() as cursor:
        Order.objects.create(ref="U-1")
        with pytest.raises(ShadowSideEffectBlocked):
            escape(cursor)
    assert rows.postgres() == []


@pytest.mark.usefixtures("installed")
def test_callproc_is_refused(mariadb: MariaRows) -> None:
    """A stored procedure may COMMIT inside: unseen, so refused."""
    mariadb.execute("CREATE PROCEDURE sg_commits() BEGIN COMMIT; END")
    try:
        with shadow(), ShadowTransactions(using=[MARIADB]):
            Order.objects.using(MARIADB).create(ref="V-1")
            with (
                connections[MARIADB].cursor() as cursor,
                pytest.raises(ShadowSideEffectBlocked, match="callproc"),
            ):
                cursor.callproc("sg_commits")
    finally:
        mariadb.execute("DROP PROCEDURE sg_commits")
    assert mariadb.orders() == []


@pytest.mark.usefixtures("installed")
def test_a_raw_connection_kept_after_the_request_is_plain_again(rows: Rows) -> None:
    """What the app kept of the driver connection works as primary once the hold ends."""
    with shadow(), ShadowTransactions(using=["default", "other"]):
        kept = {alias: _raw(alias) for alias in ("default", "other")}
        cursors = {alias: kept[alias].cursor() for alias in kept}
    for alias in ("default", "other"):
        assert type(_raw(alias)).__module__.split(".")[0] in ("psycopg", "sqlite3")
        connection = connections[alias]
        connection.set_autocommit(False)
        try:
            cursors[alias].execute(_INSERT.format(f"X-{alias}"))
            kept[alias].commit()
        finally:
            connection.set_autocommit(True)
    assert rows.postgres() == ["X-default"]
    assert rows.sqlite() == ["X-other"]


@pytest.mark.usefixtures("installed")
def test_shadow_request_with_raw_commit_persists_nothing(rows: Rows) -> None:
    """Through the middleware: the view's raw commit is refused, the request fails."""
    response = Client().post("/raw-commit/Y-1/", HTTP_HOST="orders-shadow")
    assert response.json() == {"error": "ShadowSideEffectBlocked"}
    assert rows.postgres() == []
    assert Client().post("/raw-commit/Y-2/").json() == {"error": None}
    assert rows.postgres() == ["Y-2"]


@pytest.mark.usefixtures("installed", "rows")
def test_isolation_level_is_restored_on_sqlite() -> None:
    """The sqlite3 proxy is gone after the hold: Django sees the driver's own object."""
    with shadow(), transaction.atomic(using="other"), ShadowTransactions(using=["other"]):
        assert not isinstance(_raw("other"), sqlite3.Connection)
    assert isinstance(_raw("other"), sqlite3.Connection)


def _primary_outcomes() -> list[object]:
    """What primary code gets: a stored row, the database's own error, a raw commit."""
    outcomes: list[object] = [Order.objects.create(ref="Z-1").ref]
    try:
        Order.objects.create(ref="Z-1")
    except Exception as exc:
        outcomes.append(type(exc))
    connection = connections["default"]
    connection.set_autocommit(False)
    try:
        Order.objects.create(ref="Z-2")
        outcomes.append(_raw("default").commit())
    finally:
        connection.set_autocommit(True)
    outcomes.append(sorted(Order.objects.values_list("ref", flat=True)))
    Order.objects.all().delete()
    return outcomes


def _shadow_request_that_commits() -> None:
    with shadow(), ShadowTransactions():
        Order.objects.create(ref="F-1")
        _raw("default").commit()


@pytest.mark.parametrize(
    ("module", "internal"),
    [("_execute", "judge"), ("_transactions", "hold"), ("_transactions", "release")],
)
def test_a_fault_inside_the_guard_fails_closed_and_leaves_primary_as_it_is(
    rows: Rows, monkeypatch: pytest.MonkeyPatch, module: str, internal: str
) -> None:
    """Shadow: the guard's own error surfaces, nothing is stored, the connection is fine
    afterwards. Primary: the same results and the same errors as without the guard."""
    import importlib

    import shadowguard

    expected = _primary_outcomes()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("fault inside the guard")

    shadowguard.install("django")
    try:
        monkeypatch.setattr(
            importlib.import_module(f"shadowguard.integrations.django.{module}"), internal, broken
        )
        with pytest.raises(RuntimeError, match="fault"):
            _shadow_request_that_commits()
        assert rows.postgres() == []
        assert _primary_outcomes() == expected
    finally:
        shadowguard.uninstall("django")
    assert rows.postgres() == []
