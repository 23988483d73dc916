"""Databases for the SQLAlchemy guard tests, each with an oracle that is not SQLAlchemy.

The oracle (a plain psycopg or sqlite3 connection of its own) is what the tests believe:
never the guard's bookkeeping. Also the table's ORM and Core forms the tests write with.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Integer, String, column, create_engine, table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from tests.peers.postgres import PG_HOST, PG_PORT, PG_USER

SCHEMA = (
    "id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL DEFAULT 'dflt', n INTEGER NOT NULL DEFAULT 0"
)


@dataclass
class Backend:
    """One database: a URL for SQLAlchemy, and an independent oracle to ask what is stored."""

    name: str
    url: str
    dsn: Any
    table: str = field(default_factory=lambda: f"t_{uuid.uuid4().hex[:10]}")
    engines: list[Engine] = field(default_factory=list)

    def oracle(self, sql: str) -> list[tuple[Any, ...]]:
        if self.name == "sqlite":
            with sqlite3.connect(self.dsn) as db:
                return list(db.execute(sql).fetchall())
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as pgdb:
            return list(pgdb.execute(sql).fetchall())

    def execute(self, sql: str) -> None:
        if self.name == "sqlite":
            db = sqlite3.connect(self.dsn)
            try:
                db.executescript(sql)
                db.commit()
            finally:
                db.close()
            return
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as pgdb:
            pgdb.execute(sql)

    def create_table(self, name: str | None = None, schema: str = SCHEMA) -> str:
        name = name or self.table
        self.execute(f"CREATE TABLE {name} ({schema})")
        return name

    def count(self, where: str = "1=1", table: str | None = None) -> int:
        return int(self.oracle(f"SELECT count(*) FROM {table or self.table} WHERE {where}")[0][0])

    def ids(self) -> list[Any]:
        """The ids stored in the table, in order."""
        return [row[0] for row in self.oracle(f"SELECT id FROM {self.table} ORDER BY id")]

    def engine(self, **kwargs: Any) -> Engine:
        engine = create_engine(self.url, **kwargs)
        self.engines.append(engine)
        return engine


def model(table_name: str) -> Any:
    """A fresh ORM class mapped to ``table_name``."""

    class Base(DeclarativeBase):
        pass

    class Row(Base):
        __tablename__ = table_name
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(20), server_default="dflt")
        n: Mapped[int] = mapped_column(Integer, server_default="0")

    return Row


def core(table_name: str) -> Any:
    """``table_name`` as a Core table."""
    return table(table_name, column("id"), column("name"), column("n"))


def checked_out(engine: Any) -> int:
    """Connections of ``engine`` (sync or async) not returned to its pool."""
    pool = getattr(engine, "sync_engine", engine).pool
    return int(pool.checkedout())


def assert_refused_then_stored(
    backend: Backend,
    engine: Engine,
    run: Callable[[Connection], object],
    match: str | None = None,
) -> None:
    """``run`` on a connection is refused in shadow, nothing stored; as primary one row is."""
    with (
        shadowguard.shadow(),
        engine.connect() as c,
        pytest.raises(ShadowSideEffectBlocked, match=match),
    ):
        run(c)
    assert backend.count() == 0
    with engine.connect() as c:
        run(c)
    assert backend.count() == 1


def advisory_locks(backend: Backend, pid: Any) -> int:
    sql = f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = {pid}"
    return int(backend.oracle(sql)[0][0])


def postgres_backend(database: str) -> Backend:
    return Backend(
        "postgresql",
        f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}",
        f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={database}",
    )


def sqlite_backend(tmp_path: Path) -> Backend:
    path = tmp_path / "guard.db"
    return Backend("sqlite", f"sqlite:///{path}", str(path))


def make_backend(request: pytest.FixtureRequest, kind: str) -> Iterator[Backend]:
    if kind == "sqlite":
        backend = sqlite_backend(request.getfixturevalue("tmp_path"))
    else:
        backend = postgres_backend(request.getfixturevalue("postgres_database"))
    backend.create_table()
    try:
        yield backend
    finally:
        for engine in backend.engines:
            engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """PostgreSQL, then SQLite, each with a fresh table (import it as ``backend as backend``)."""
    yield from make_backend(request, request.param)
