"""A throwaway PostgreSQL database per test session, on the server at 127.0.0.1:5432."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import psycopg

from tests.peers.services import service_missing

PG_HOST = os.environ.get("SHADOWGUARD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SHADOWGUARD_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SHADOWGUARD_TEST_PG_USER", "postgres")


def _admin_connect() -> psycopg.Connection[tuple[object, ...]]:
    import psycopg

    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=PG_USER,
        dbname="postgres",
        autocommit=True,
        connect_timeout=3,
    )


@contextmanager
def fresh_database(prefix: str = "sg") -> Iterator[str]:
    """A new database on the server, dropped on exit; a missing server is ``service_missing``."""
    try:
        import psycopg
    except ImportError:
        service_missing("psycopg (the PostgreSQL driver)")
    try:
        admin = _admin_connect()
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL at {PG_HOST}:{PG_PORT} ({exc})")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with _admin_connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """Name of a database created for this test session and dropped after it."""
    with fresh_database() as name:
        yield name


@pytest.fixture(scope="session")
def postgres_url(postgres_database: str) -> str:
    """SQLAlchemy URL (psycopg 3 driver) of the session's test database."""
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{postgres_database}"


@pytest.fixture(scope="session")
def postgres_asyncpg_url(postgres_database: str) -> str:
    """SQLAlchemy URL (asyncpg driver) of the session's test database."""
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{postgres_database}"
