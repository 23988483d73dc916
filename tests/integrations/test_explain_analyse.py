"""EXPLAIN that analyses runs its statement: every spelling and form is judged by that statement.

PostgreSQL accepts ``ANALYSE`` as well as ``ANALYZE``, and option lists in parentheses; the
classifier is shared by the SQLAlchemy and the Django guard.
"""

from __future__ import annotations

import pytest

from shadowguard import ShadowSideEffectBlocked, shadow
from shadowguard import _statements as stm
from tests.integrations._sa_backends import Backend

SINK = "sqlalchemy"
pytestmark = pytest.mark.postgres


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
