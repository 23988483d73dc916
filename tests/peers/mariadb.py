"""A throwaway MariaDB (or MySQL) database per test session, on the server at 127.0.0.1:3306."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.peers.services import service_missing

MYSQL_HOST = os.environ.get("SHADOWGUARD_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("SHADOWGUARD_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("SHADOWGUARD_TEST_MYSQL_USER", "root")


def mysql_connect(database: str | None = None) -> Any:
    """A plain PyMySQL connection in autocommit mode: the tests' oracle."""
    import pymysql  # type: ignore[import-untyped]

    return pymysql.connect(
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        user=MYSQL_USER,
        database=database,
        autocommit=True,
        connect_timeout=3,
    )


@pytest.fixture(scope="session")
def mariadb_database() -> Iterator[str]:
    """Name of a database created for this test session and dropped after it."""
    try:
        import pymysql
    except ImportError:
        service_missing("PyMySQL (the MariaDB/MySQL driver)")
    try:
        admin = mysql_connect()
    except pymysql.err.OperationalError as exc:
        service_missing(f"MariaDB at {MYSQL_HOST}:{MYSQL_PORT} ({exc})")
    name = f"sg_{uuid.uuid4().hex[:12]}"
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}`")
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(scope="session")
def mariadb_url(mariadb_database: str) -> str:
    """SQLAlchemy URL (PyMySQL driver) of the session's test database."""
    return f"mysql+pymysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{mariadb_database}"


@pytest.fixture
def mariadb_table(mariadb_url: str, mariadb_database: str) -> Iterator[tuple[Any, str, Any]]:
    """A one-connection SQLAlchemy engine, a fresh InnoDB table ``(id, name)`` and an oracle."""
    from sqlalchemy import create_engine

    table = f"t_{uuid.uuid4().hex[:10]}"
    oracle = mysql_connect(mariadb_database)
    with oracle.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB"
        )
    engine = create_engine(mariadb_url, pool_size=1, max_overflow=0)
    try:
        yield engine, table, oracle
    finally:
        engine.dispose()
        oracle.close()
