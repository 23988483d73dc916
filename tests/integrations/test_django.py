"""The Django ORM guard against PostgreSQL, SQLite and MariaDB: the execute wrapper,
ShadowTransactions and the SQL it refuses. The middleware's own tests are in
tests/middleware/test_django.py.
"""

from __future__ import annotations

import contextlib
import os

import psycopg
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.middleware.django_settings")

import django

django.setup()

from django.db import connections, transaction  # noqa: E402
from django.test import Client  # noqa: E402

import shadowguard  # noqa: E402
from shadowguard import ShadowSideEffectBlocked, shadow  # noqa: E402
from shadowguard.integrations.django import ShadowTransactions, is_write  # noqa: E402
from tests.middleware.djangoapp import databases  # noqa: E402
from tests.middleware.djangoapp.databases import MARIADB, MariaRows, Rows  # noqa: E402
from tests.middleware.djangoapp.models import Order  # noqa: E402
from tests.peers.postgres import PG_HOST, PG_PORT, PG_USER  # noqa: E402

SINK = "django"
SHADOW = {"HTTP_HOST": "orders-shadow"}
pytestmark = pytest.mark.postgres

django_databases = databases.django_databases
rows = databases.rows
mariadb_orders = databases.mariadb_orders
mariadb = databases.mariadb


@pytest.mark.usefixtures("installed")
def test_write_on_a_connection_outside_the_transaction_is_refused(rows: Rows) -> None:
    """A propagated worker thread has its own autocommit connection: its write is blocked."""
    assert Client().post("/thread/H-1/", **SHADOW).json() == {"error": "ShadowSideEffectBlocked"}
    assert rows.postgres() == []
    assert Client().post("/thread/H-2/").json() == {"error": None}
    assert rows.postgres() == ["H-2"]


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


@pytest.mark.usefixtures("installed")
def test_nested_shadow_transactions_keep_the_outer_one(rows: Rows) -> None:
    with shadow() as scope, ShadowTransactions():
        Order.objects.create(ref="K-1")
        assert Client().post("/durable/K-2/", **SHADOW).json() == {"ok": True}
        Order.objects.create(ref="K-3")  # still inside the outer shadow transaction
        assert Order.objects.filter(ref__startswith="K").count() == 2
    assert scope.counts == {"db.commit": 3}
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
@pytest.mark.usefixtures("installed")
def test_raw_transaction_end_is_refused_at_every_depth(rows: Rows, statement: str) -> None:
    """A raw COMMIT in a shadow transaction would commit its writes: it is refused."""
    for nested in (False, True):
        with shadow(), ShadowTransactions(), connections["default"].cursor() as cursor:
            cursor.execute(_INSERT.format(f"L-{nested}"))
            with (
                transaction.atomic() if nested else contextlib.nullcontext(),
                pytest.raises(ShadowSideEffectBlocked, match="raw transaction"),
            ):
                cursor.execute(statement)
        assert rows.postgres() == []
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
@pytest.mark.usefixtures("installed")
def test_several_statements_in_one_execute_are_refused(rows: Rows, sql: str) -> None:
    """psycopg binds client-side under Django: a write hidden after a SELECT would run."""
    blocked = pytest.raises(ShadowSideEffectBlocked, match="2 SQL statements")
    with shadow(), connections["default"].cursor() as cursor, blocked:
        cursor.execute(sql)
    blocked = pytest.raises(ShadowSideEffectBlocked, match="2 SQL statements")
    with shadow(), ShadowTransactions(), connections["default"].cursor() as cursor, blocked:
        cursor.execute(sql)
    assert rows.postgres() == []
    with connections["default"].cursor() as cursor:
        cursor.execute(sql)  # primary
    assert rows.postgres() == ["M-1"]


@pytest.mark.usefixtures("installed")
def test_the_shadow_transactions_savepoint_is_not_released_by_raw_sql(rows: Rows) -> None:
    """Under an outer atomic block the shadow transaction is a savepoint: hands off."""
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
    assert rows.postgres() == []


@pytest.mark.parametrize(
    ("sql", "write", "vendor"),
    [
        ("SELECT 1", False, ""),
        ('  /* c */ (SELECT "x" FROM t FOR UPDATE)', False, ""),
        ("SAVEPOINT s1", False, ""),
        ("RELEASE SAVEPOINT s1", False, ""),
        ("INSERT INTO t VALUES (1)", True, ""),
        ("update t set x = 1", True, ""),
        ("WITH a AS (SELECT 1) SELECT * FROM a", False, ""),
        ("WITH a AS (DELETE FROM t RETURNING *) SELECT * FROM a", True, ""),
        ("EXPLAIN SELECT 1", False, ""),
        ("EXPLAIN ANALYZE DELETE FROM t", True, ""),
        ("CREATE TABLE x (a int)", True, ""),
        ("COPY t FROM STDIN", True, ""),
        ("", True, ""),
        # Every statement is judged.
        ("SELECT 1; INSERT INTO t VALUES (1)", True, ""),
        ("SELECT ';INSERT'; SELECT 2;", False, ""),
        ("   ;  ", True, ""),
        # As the vendor may read it: MySQL runs /*! */ comments; a server setting may turn off
        # backslash escapes; without a vendor, every reading is tried.
        ("SELECT 1 /*! ; DELETE FROM t */", True, "mysql"),
        ("SELECT 1 /*! ; DELETE FROM t */", False, "postgresql"),
        ('SELECT "a\\"; DELETE FROM t; --"', True, "mysql"),
        ("SELECT 'a\\'; DELETE FROM t; --'", True, "postgresql"),
        ("SELECT [a;DELETE] FROM t", False, "sqlite"),
        ("SELECT [a;DELETE] FROM t", True, ""),
    ],
)
def test_is_write_fails_closed(sql: str, write: bool, vendor: str) -> None:
    assert is_write(sql, vendor) is write


@pytest.mark.usefixtures("installed")
def test_a_refusal_is_recorded_as_blocked(rows: Rows) -> None:
    """Operators count refusals: each is recorded with the error it raised."""
    with shadow() as scope, pytest.raises(ShadowSideEffectBlocked) as refusal:
        Order.objects.create(ref="O-1")
    (blocked,) = scope.suppressed
    assert blocked.blocked
    assert blocked.error is refusal.value
    assert (blocked.kind, blocked.target) == ("db.commit", "default")
    assert blocked.detail["database"] == "default"
    assert blocked.detail["operation"] == "execute"
    assert blocked.detail["statements"][0].startswith("INSERT INTO")
    assert rows.postgres() == []


@pytest.mark.usefixtures("installed")
def test_an_autocommit_write_is_recorded_with_its_statement(rows: Rows) -> None:
    with shadow() as scope, ShadowTransactions():
        Order.objects.create(ref="O-2")
    (suppressed,) = scope.suppressed
    assert not suppressed.blocked
    assert suppressed.detail["autocommit"] is True
    assert suppressed.detail["database"] == "default"
    assert suppressed.detail["operation"] == "execute"
    assert suppressed.detail["statements"][0].startswith("INSERT INTO")
    assert rows.postgres() == []


def _sequence_value(rows: Rows) -> int:
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=rows.pg_database) as c:
        (value,) = c.execute("SELECT last_value FROM sg_django_order_id_seq").fetchone() or (0,)
        return int(value)


@pytest.mark.usefixtures("installed")
def test_what_no_rollback_undoes_is_refused_in_a_shadow_transaction(rows: Rows) -> None:
    """setval() survives the rollback: refused in shadow, and as primary it persists."""
    setval = "SELECT setval('sg_django_order_id_seq', 7000)"
    before = _sequence_value(rows)
    with shadow(), ShadowTransactions(), connections["default"].cursor() as cursor:
        with pytest.raises(ShadowSideEffectBlocked, match="setval"):
            cursor.execute(setval)
        with pytest.raises(ShadowSideEffectBlocked, match="CREATE in shadow traffic"):
            cursor.execute("CREATE TABLE sg_django_never (a int)")
    assert _sequence_value(rows) == before
    with ShadowTransactions(), connections["default"].cursor() as cursor:  # primary
        cursor.execute(setval)
    assert _sequence_value(rows) == 7000


# MariaDB commits the open transaction before each of these: the shadow's INSERT would persist.
COMMITS_FIRST = [
    "CREATE TABLE sg_django_ddl (a int)",
    "BEGIN",
    "START TRANSACTION",
    "SET autocommit = 1",
    "LOCK TABLES sg_django_order WRITE",
]


@pytest.mark.parametrize("statement", COMMITS_FIRST)
def test_mariadb_statements_that_commit_first_are_refused(
    mariadb: MariaRows, statement: str
) -> None:
    """Refused in shadow, so the row is really gone; the same code as primary persists it."""
    with shadow() as scope, ShadowTransactions(using=[MARIADB]):
        Order.objects.using(MARIADB).create(ref="P-shadow")
        with (
            connections[MARIADB].cursor() as cursor,
            pytest.raises(ShadowSideEffectBlocked, match="in shadow traffic on Django database"),
        ):
            cursor.execute(statement)
    assert mariadb.orders() == []
    assert "sg_django_ddl" not in mariadb.tables()
    assert [s.blocked for s in scope.suppressed] == [False, True]
    with ShadowTransactions(using=[MARIADB]), connections[MARIADB].cursor() as cursor:
        Order.objects.using(MARIADB).create(ref="P-primary")
        cursor.execute(statement)
        if statement.startswith("LOCK"):
            cursor.execute("UNLOCK TABLES")
    # ShadowTransactions rolled back, yet the server had committed the INSERT already.
    assert mariadb.orders() == ["P-primary"]


@pytest.mark.usefixtures("installed")
def test_mariadb_shadow_request_that_runs_ddl_commits_nothing(
    rows: Rows, mariadb: MariaRows
) -> None:
    """Through the middleware: the view's CREATE TABLE is refused and its INSERT rolled back."""
    assert Client().post("/mariadb-ddl/q1/", **SHADOW).json() == {
        "error": "ShadowSideEffectBlocked"
    }
    assert mariadb.orders() == []
    assert "sg_django_ddl_q1" not in mariadb.tables()
    assert Client().post("/mariadb-ddl/q2/").json() == {"error": None}
    assert mariadb.orders() == ["q2"]
    assert "sg_django_ddl_q2" in mariadb.tables()


def test_mariadb_savepoints_of_the_application_work_the_shadow_ones_are_guarded(
    mariadb: MariaRows,
) -> None:
    """Django quotes MySQL savepoints with backticks: its own are told from the shadow's."""
    with shadow(), transaction.atomic(using=MARIADB), ShadowTransactions(using=[MARIADB]):
        connection = connections[MARIADB]
        sid = connection.savepoint_ids[-1]
        with transaction.atomic(using=MARIADB):
            Order.objects.using(MARIADB).create(ref="R-1")
        with contextlib.suppress(ValueError), transaction.atomic(using=MARIADB):
            Order.objects.using(MARIADB).create(ref="R-2")
            raise ValueError("rolled back to the application's savepoint")
        assert Order.objects.using(MARIADB).count() == 1
        with connection.cursor() as cursor:
            with pytest.raises(ShadowSideEffectBlocked, match="savepoint"):
                cursor.execute(f"RELEASE SAVEPOINT `{sid.upper()}`")
            with pytest.raises(ShadowSideEffectBlocked, match="savepoint"):
                cursor.execute(f"ROLLBACK TO SAVEPOINT {sid}")
    assert mariadb.orders() == []


def test_mariadb_connection_opened_before_install_is_guarded(mariadb: MariaRows) -> None:
    connections[MARIADB].ensure_connection()
    shadowguard.install("django")
    try:
        with shadow(), pytest.raises(ShadowSideEffectBlocked, match="outside a shadow"):
            Order.objects.using(MARIADB).create(ref="S-1")
        connections[MARIADB].close()
        # Reconnecting in shadow: Django's own session set-up passes the guard.
        with shadow(), ShadowTransactions(using=[MARIADB]):
            Order.objects.using(MARIADB).create(ref="S-2")
    finally:
        shadowguard.uninstall("django")
    assert mariadb.orders() == []
