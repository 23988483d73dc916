"""Lock bounds of Django shadow transactions on real PostgreSQL and MariaDB (issue 19)."""

from __future__ import annotations

import os
import time

import psycopg
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.middleware.django_settings")

import django

django.setup()

from django.db import DatabaseError, OperationalError, connections, transaction  # noqa: E402

from shadowguard import shadow  # noqa: E402
from shadowguard.integrations.django import ShadowTransactions  # noqa: E402
from tests.middleware.djangoapp import databases  # noqa: E402
from tests.middleware.djangoapp.databases import MARIADB, MariaRows, Rows  # noqa: E402
from tests.middleware.djangoapp.models import Order  # noqa: E402
from tests.peers.mariadb import mysql_connect  # noqa: E402
from tests.peers.postgres import PG_HOST, PG_PORT, PG_USER  # noqa: E402

SINK = "django"
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("installed")]

django_databases = databases.django_databases
rows = databases.rows
mariadb_orders = databases.mariadb_orders
mariadb = databases.mariadb

BOUNDS = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")
MARIA_BOUNDS = "@@innodb_lock_wait_timeout, @@max_statement_time, @@idle_transaction_timeout"


def shown(alias: str = "default") -> dict[str, str]:
    with connections[alias].cursor() as cursor:
        values = {}
        for name in BOUNDS:
            cursor.execute(f"SHOW {name}")
            values[name] = cursor.fetchone()[0]
        return values


def primary_holding(rows: Rows, ref: str) -> psycopg.Connection[tuple[object, ...]]:
    primary = psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=rows.pg_database)
    primary.execute(f"INSERT INTO {Order._meta.db_table} (ref) VALUES (%s)", (ref,))
    return primary


def test_a_shadow_insert_of_a_key_the_primary_holds_fails_fast(rows: Rows) -> None:
    """The primary's uncommitted row holds the key; nothing of the shadow persists."""
    defaults = shown()
    primary = primary_holding(rows, "L-1")
    try:
        with shadow(), ShadowTransactions(["default"]):
            assert shown() == {
                "lock_timeout": "100ms",
                "statement_timeout": "5s",
                "idle_in_transaction_session_timeout": "5s",
            }
            # In atomic blocks of the shadow code (savepoints), so that it can go on.
            with transaction.atomic():
                started = time.monotonic()
                with pytest.raises(OperationalError, match="lock timeout"), transaction.atomic():
                    Order.objects.create(ref="L-1")
                assert time.monotonic() - started < 0.6
            Order.objects.create(ref="L-2")
        primary.commit()
    finally:
        primary.close()
    assert rows.postgres() == ["L-1"]
    assert shown() == defaults


def test_a_shadow_set_of_a_bound_is_undone_with_the_transaction(rows: Rows) -> None:
    defaults = shown()
    with shadow(), ShadowTransactions(["default"]), connections["default"].cursor() as cursor:
        cursor.execute("SET statement_timeout = '42s'")
    assert shown() == defaults


def test_a_statement_longer_than_the_bound_is_cancelled(rows: Rows) -> None:
    import shadowguard

    shadowguard.configure(db_statement_timeout_ms=200)
    try:
        started = time.monotonic()
        with (
            shadow(),
            ShadowTransactions(["default"]),
            pytest.raises(OperationalError, match="statement timeout"),
            connections["default"].cursor() as cursor,
        ):
            cursor.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 1.5
    finally:
        shadowguard._config.reset()


def test_the_primary_transaction_around_a_shadow_one_is_not_bounded(rows: Rows) -> None:
    defaults = shown()
    with transaction.atomic():
        with shadow(), ShadowTransactions(["default"]):
            assert shown() == defaults
        transaction.set_rollback(True)


def maria_bounds() -> tuple[float, ...]:
    with connections[MARIADB].cursor() as cursor:
        cursor.execute(f"SELECT {MARIA_BOUNDS}")
        return tuple(float(x) for x in cursor.fetchone())


def test_mariadb_session_bounds_are_set_and_put_back(mariadb: MariaRows) -> None:
    defaults = tuple(float(str(x)) for x in mariadb.execute(f"SELECT {MARIA_BOUNDS}")[0])
    primary = mysql_connect(mariadb.database)
    primary.autocommit(False)
    try:
        with primary.cursor() as cursor:
            cursor.execute(f"INSERT INTO {Order._meta.db_table} (ref) VALUES ('M-1')")
        with shadow(), ShadowTransactions([MARIADB]):
            assert maria_bounds() == (1.0, 5.0, 5.0)
            started = time.monotonic()
            with (
                pytest.raises(OperationalError, match="Lock wait timeout"),
                transaction.atomic(using=MARIADB),
            ):
                Order.objects.using(MARIADB).create(ref="M-1")
            assert time.monotonic() - started < 2.0
            with connections[MARIADB].cursor() as cursor:
                # Not transactional on MariaDB: put back with the bounds all the same.
                cursor.execute("SET SESSION innodb_lock_wait_timeout = 77")
        primary.commit()
    finally:
        primary.close()
    assert maria_bounds() == defaults
    assert mariadb.orders() == ["M-1"]


def test_a_hung_shadow_is_cut_off_and_the_primary_goes_on(rows: Rows) -> None:
    """Past the idle bound PostgreSQL ends the shadow's session; the next primary reconnects."""
    import shadowguard

    shadowguard.configure(db_idle_timeout_ms=300)
    try:
        with shadow(), ShadowTransactions(["default"]):
            Order.objects.create(ref="H-1")
            time.sleep(1)  # a hung shadow handler, its transaction open
            with pytest.raises(DatabaseError, match="idle-in-transaction"):
                Order.objects.create(ref="H-2")
    finally:
        shadowguard._config.reset()
    Order.objects.create(ref="H-3")
    assert rows.postgres() == ["H-3"]
