"""Database snapshot of the pytest plugin: 50 tables, 100,000 rows, SQLite and PostgreSQL.

An absolute-time benchmark (seconds per snapshot on this machine), not a guarded/unguarded
ratio: a shadow test pays two snapshots, and the target is well under a second each.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._harness import QUICK, Harness

TABLES = 50
ROWS = 100_000
TARGET_SECONDS = 0.5


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    fn()  # warm-up: connection set-up and caches are not what is measured
    samples = []
    for _ in range(3 if QUICK else 9):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), max(samples)


def _report(h: Harness, label: str, fn: Callable[[], object]) -> None:
    median, worst = _time(fn)
    verdict = "OK" if median < TARGET_SECONDS else "MISSED"
    h.note(
        f"snapshot {label}, {TABLES} tables / {ROWS} rows: median {median:.3f} s, "
        f"worst {worst:.3f} s (absolute time; target < {TARGET_SECONDS} s) {verdict}"
    )


def _fill(
    engine: Any, columns: str, insert: str, rows: list[tuple[Any, ...]] | None = None
) -> None:
    """Create tables ``t0`` .. ``t<TABLES-1>`` of ``columns``; fill each with ``insert``."""
    with engine.begin() as conn:
        for t in range(TABLES):
            conn.exec_driver_sql(f"CREATE TABLE t{t} ({columns})")
            conn.exec_driver_sql(insert.format(table=f"t{t}"), rows)


def _sqlite(h: Harness) -> None:
    import sqlalchemy as sa

    from shadowguard.testing import snapshot

    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        _fill(
            engine,
            "id INTEGER PRIMARY KEY, name TEXT, amount REAL, created TEXT",
            "INSERT INTO {table} (name, amount, created) VALUES (?, ?, ?)",
            [(f"name {i}", i * 1.5, "2026-01-01T00:00:00") for i in range(ROWS // TABLES)],
        )
        try:
            _report(h, "SQLite (file)", lambda: snapshot(engine))
        finally:
            engine.dispose()


def _postgresql(h: Harness) -> None:
    if not h.imports(
        "psycopg", "sqlalchemy", missing="PostgreSQL snapshot skipped: psycopg is not installed"
    ):
        return
    import psycopg
    import sqlalchemy as sa

    from shadowguard.testing import snapshot

    host = os.environ.get("SHADOWGUARD_TEST_PG_HOST", "127.0.0.1")
    port = int(os.environ.get("SHADOWGUARD_TEST_PG_PORT", "5432"))
    user = os.environ.get("SHADOWGUARD_TEST_PG_USER", "postgres")
    try:
        admin = psycopg.connect(
            host=host, port=port, user=user, dbname="postgres", autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as exc:
        h.note(f"PostgreSQL snapshot skipped: no server at {host}:{port} ({exc})")
        return
    name = f"sg_bench_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    engine = sa.create_engine(f"postgresql+psycopg://{user}@{host}:{port}/{name}")
    try:
        _fill(
            engine,
            "id serial PRIMARY KEY, name text, amount numeric, created timestamptz",
            "INSERT INTO {table} (name, amount, created) SELECT 'name ' || i, i * 1.5, "
            f"now() FROM generate_series(1, {ROWS // TABLES}) AS i",
        )
        _report(h, "PostgreSQL (server-side hashes)", lambda: snapshot(engine))
    finally:
        engine.dispose()
        with psycopg.connect(
            host=host, port=port, user=user, dbname="postgres", autocommit=True
        ) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(h: Harness) -> None:
    _sqlite(h)
    _postgresql(h)
