"""Statements the classifier once read as reads although they write, proven on the real database.

EXPLAIN that analyses runs its statement (PostgreSQL accepts ``ANALYSE`` as well as
``ANALYZE``, and option lists in parentheses); SQLite's ``WITH ... REPLACE INTO`` writes. The
classifier is shared by the SQLAlchemy and the Django guard.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from shadowguard import ShadowSideEffectBlocked, shadow
from shadowguard import _statements as stm
from tests.integrations._sa_backends import Backend

SINK = "sqlalchemy"


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("EXPLAIN ANALYSE INSERT INTO t VALUES (1)", stm.WRITE),
        ("explain analyse verbose insert into t values (1)", stm.WRITE),
        ("EXPLAIN (ANALYSE, FORMAT JSON) INSERT INTO t VALUES (1)", stm.WRITE),
        ("EXPLAIN (FORMAT JSON, ANALYZE true) UPDATE t SET i = 2", stm.WRITE),
        ("EXPLAIN /* a */ (ANALYZE) DELETE FROM t", stm.WRITE),
        ("EXPLAIN ANALYZE WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", stm.WRITE),
        ("EXPLAIN (ANALYZE) CREATE TABLE c AS SELECT 1", stm.REFUSE),
        ("EXPLAIN ANALYSE SELECT setval('s', 1)", stm.REFUSE),
        ("EXPLAIN (ANALYZE) COMMIT", stm.REFUSE),
        ("EXPLAIN (FORMAT JSON) INSERT INTO t VALUES (1)", stm.READ),
        ("EXPLAIN SELECT 1", stm.READ),
    ],
)
@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite", ""])
def test_explain_is_judged_by_what_it_runs(sql: str, kind: str, dialect: str) -> None:
    assert stm.classify(sql, dialect)[0] == kind


@pytest.mark.postgres
@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize(
    "sql",
    [
        "EXPLAIN ANALYSE INSERT INTO {t} (id) VALUES (7)",
        "EXPLAIN (ANALYSE, FORMAT JSON) INSERT INTO {t} (id) VALUES (7)",
        "EXPLAIN (ANALYZE true) WITH w AS (INSERT INTO {t} (id) VALUES (7) RETURNING id) "
        "SELECT * FROM w",
    ],
)
def test_explain_analyse_on_autocommit_is_refused_and_persists_nothing(
    pg: Backend, sql: str
) -> None:
    engine = pg.engine().execution_options(isolation_level="AUTOCOMMIT")
    with shadow(), engine.connect() as conn, pytest.raises(ShadowSideEffectBlocked):
        conn.exec_driver_sql(sql.format(t=pg.table))
    assert pg.count() == 0
    with engine.connect() as conn:
        conn.exec_driver_sql(sql.format(t=pg.table))
    assert pg.count() == 1


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("WITH x AS (SELECT 1) REPLACE INTO t VALUES (1)", stm.WRITE),
        ("WITH x AS (SELECT replace(a, 'b', 'c') AS r FROM t) SELECT * FROM x", stm.READ),
    ],
)
def test_with_replace_into_is_a_write(sql: str, kind: str) -> None:
    assert stm.classify(sql, "sqlite")[0] == kind


@pytest.mark.usefixtures("installed")
def test_with_replace_into_on_sqlite_autocommit_persists_nothing(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        replace = text("WITH x AS (SELECT 7 AS id) REPLACE INTO t (id) SELECT id FROM x")
        with shadow(), engine.connect() as conn, pytest.raises(ShadowSideEffectBlocked):
            conn.execute(replace)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
            conn.execute(replace)
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
    finally:
        engine.dispose()
