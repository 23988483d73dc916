from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from tests.peers.postgres import PG_HOST, PG_PORT, PG_USER


@dataclass
class PgTable:
    """A table of its own in the session database; every access uses a fresh connection."""

    dbname: str
    name: str

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:

        return psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=self.dbname, autocommit=True
        )

    def insert(self, ref: str) -> None:
        with self.connect() as conn:
            conn.execute(f"INSERT INTO {self.name} (ref) VALUES (%s)", (ref,))

    def refs(self) -> list[str]:
        with self.connect() as conn:
            return [str(r[0]) for r in conn.execute(f"SELECT ref FROM {self.name} ORDER BY id")]


@pytest.fixture
def pg_table(postgres_database: str) -> Iterator[PgTable]:
    """A fresh table ``(id serial, ref text)``; writes through it really commit."""
    table = PgTable(postgres_database, f"mw_{uuid.uuid4().hex[:10]}")
    with table.connect() as conn:
        conn.execute(f"CREATE TABLE {table.name} (id serial PRIMARY KEY, ref text NOT NULL)")
    yield table
    with table.connect() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table.name}")
