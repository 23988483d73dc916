"""The test app's databases, each read through a connection of its own, never Django's.

PostgreSQL is alias ``default`` and SQLite ``other`` (fixtures ``django_databases`` and
``rows``); MariaDB is alias ``mariadb`` only for the tests that ask for the ``mariadb``
fixture, so that every other shadow request does not open it. Importing this module sets
Django up with ``tests.middleware.django_settings``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.middleware.django_settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connections  # noqa: E402

from tests.middleware.djangoapp import views  # noqa: E402
from tests.middleware.djangoapp.models import Order  # noqa: E402
from tests.peers.mariadb import MYSQL_HOST, MYSQL_PORT, MYSQL_USER, mysql_connect  # noqa: E402
from tests.peers.postgres import PG_HOST, PG_PORT, PG_USER  # noqa: E402

MARIADB = "mariadb"
_TABLE = Order._meta.db_table


class Rows:
    """Reads the order table of each database."""

    def __init__(self, pg_database: str, sqlite_path: Path) -> None:
        self.pg_database = pg_database
        self.sqlite_path = sqlite_path

    def postgres(self) -> list[str]:
        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=self.pg_database
        ) as conn:
            return sorted(r[0] for r in conn.execute(f"SELECT ref FROM {_TABLE}"))

    def sqlite(self) -> list[str]:
        conn = sqlite3.connect(self.sqlite_path)
        try:
            return sorted(r[0] for r in conn.execute(f"SELECT ref FROM {_TABLE}"))
        finally:
            conn.close()


@pytest.fixture(scope="module")
def django_databases(
    postgres_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rows]:
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


class MariaRows:
    """Reads MariaDB through a PyMySQL connection of its own (autocommit)."""

    def __init__(self, database: str) -> None:
        self.database = database

    def execute(self, sql: str) -> list[tuple[object, ...]]:
        conn = mysql_connect(self.database)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall())
        finally:
            conn.close()

    def orders(self) -> list[str]:
        return sorted(str(r[0]) for r in self.execute(f"SELECT ref FROM {_TABLE}"))

    def tables(self) -> list[str]:
        return sorted(str(r[0]) for r in self.execute("SHOW TABLES"))


@pytest.fixture(scope="module")
def mariadb_orders(mariadb_database: str) -> Iterator[MariaRows]:
    """The order table in the session's MariaDB database, for this test module."""
    oracle = MariaRows(mariadb_database)
    oracle.execute(
        f"CREATE TABLE {_TABLE} (id bigint AUTO_INCREMENT PRIMARY KEY, "
        "ref varchar(40) NOT NULL UNIQUE) ENGINE=InnoDB"
    )
    yield oracle
    oracle.execute(f"DROP TABLE {_TABLE}")


@pytest.fixture
def mariadb(mariadb_orders: MariaRows) -> Iterator[MariaRows]:
    """Alias ``mariadb`` (Django's MySQL backend on PyMySQL) for the test, emptied after it.

    Every table the test created besides the order table is dropped after it.
    """
    import pymysql  # type: ignore[import-untyped]

    pymysql.install_as_MySQLdb()
    settings.DATABASES[MARIADB] = {
        "ENGINE": "django.db.backends.mysql",
        "NAME": mariadb_orders.database,
        "USER": MYSQL_USER,
        "HOST": MYSQL_HOST,
        "PORT": str(MYSQL_PORT),
    }
    connections.configure_settings(settings.DATABASES)  # fills in the defaults
    try:
        yield mariadb_orders
    finally:
        connections[MARIADB].close()
        with contextlib.suppress(AttributeError):
            del connections[MARIADB]
        del settings.DATABASES[MARIADB]
        for table in mariadb_orders.tables():
            if table != _TABLE:
                mariadb_orders.execute(f"DROP TABLE `{table}`")
        mariadb_orders.execute(f"DELETE FROM {_TABLE}")
