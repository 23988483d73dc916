"""The SQLAlchemy guard against statements that hide their effect, on real databases.

Strings of several statements, functions no rollback undoes, statements MySQL and MariaDB
commit before, and quoted text that only looks like a keyword. Each effect is asked of an
oracle of its own (plain psycopg, sqlite3 or PyMySQL), and the same code as primary shows
that the effect is real.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from tests.integrations._sa_backends import Backend, assert_refused_then_stored, core

SINK = "sqlalchemy"
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("installed")]


# -- several statements in one string --------------------------------------------------


def _via_driver_sql(engine: Any, sql: str) -> None:
    with engine.connect() as c:
        c.exec_driver_sql(sql)
        c.rollback()


def _via_text(engine: Any, sql: str) -> None:
    with engine.connect() as c:
        c.execute(text(sql))
        c.rollback()


def _via_session(engine: Any, sql: str) -> None:
    with Session(engine) as s:
        s.execute(text(sql))
        s.rollback()


VIAS: dict[str, Callable[[Any, str], None]] = {
    "exec_driver_sql": _via_driver_sql,
    "text": _via_text,
    "session": _via_session,
}


@pytest.mark.parametrize("via", sorted(VIAS))
@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO {t} (id) VALUES (1); SELECT 1; COMMIT",
        "INSERT INTO {t} (id) VALUES (1); SELECT ';' /* ; */; -- ;\n COMMIT",
        "INSERT INTO {t} (id) VALUES (1); SELECT $x$ ' $x$; END",
        "VALUES (1); ROLLBACK; INSERT INTO {t} (id) VALUES (1)",
    ],
)
def test_a_commit_behind_another_statement_is_refused(pg: Backend, via: str, sql: str) -> None:
    """psycopg sends the string as one simple query: PostgreSQL runs every statement."""
    sql = sql.format(t=pg.table)
    engine = pg.engine()
    with shadowguard.shadow(), pytest.raises(ShadowSideEffectBlocked):
        VIAS[via](engine, sql)
    assert pg.count() == 0
    VIAS[via](engine, sql)  # as primary the row persists, despite the rollback
    assert pg.count() == 1


@pytest.mark.parametrize(
    "sql",
    [
        "SET search_path TO public; INSERT INTO {t} (id) VALUES (1)",
        "SELECT 'x;'; /* ; */ INSERT INTO {t} (id) VALUES (1)",
        "SELECT 1; SELECT pg_notify('sg', 'x'); INSERT INTO {t} (id) VALUES (1)",
    ],
)
def test_a_write_behind_a_read_on_autocommit_is_refused(pg: Backend, sql: str) -> None:
    sql = sql.format(t=pg.table)
    engine = pg.engine(isolation_level="AUTOCOMMIT")
    assert_refused_then_stored(pg, engine, lambda c: c.exec_driver_sql(sql))


def test_several_reads_in_one_string_run(pg: Backend) -> None:
    engine = pg.engine(isolation_level="AUTOCOMMIT")
    with shadowguard.shadow(), engine.connect() as c:
        result = c.exec_driver_sql("SELECT 'a;b -- COMMIT'; SET search_path TO public")
        assert result.scalar() == "a;b -- COMMIT"


# -- quoted text is not a keyword ------------------------------------------------------


@pytest.mark.parametrize("sql", ["SELECT 'copy into the cart' AS x", "SELECT 1 /* into */ AS x"])
def test_into_in_a_literal_or_comment_is_a_read(pg: Backend, sql: str) -> None:
    engine = pg.engine(isolation_level="AUTOCOMMIT")
    with shadowguard.shadow(), engine.connect() as c:
        assert c.exec_driver_sql(sql).scalar() in ("copy into the cart", 1)


# -- functions no rollback undoes ------------------------------------------------------


@pytest.fixture
def sequence_table(pg: Backend) -> str:
    t = f"s_{uuid.uuid4().hex[:10]}"
    pg.execute(f"CREATE TABLE {t} (id SERIAL PRIMARY KEY); INSERT INTO {t} DEFAULT VALUES")
    pg.execute(f"INSERT INTO {t} DEFAULT VALUES")
    return t


@pytest.mark.parametrize("autocommit", [False, True])
def test_setval_is_refused(pg: Backend, sequence_table: str, autocommit: bool) -> None:
    t = sequence_table
    engine = pg.engine(**({"isolation_level": "AUTOCOMMIT"} if autocommit else {}))
    setval = f"SELECT pg_catalog.setval('{t}_id_seq', 1)"
    with (
        shadowguard.shadow(),
        pytest.raises(ShadowSideEffectBlocked, match="setval"),
        engine.begin() as c,
    ):
        c.exec_driver_sql(setval)
    with engine.begin() as c:  # primary: no duplicate key
        c.exec_driver_sql(f"INSERT INTO {t} DEFAULT VALUES")
    assert pg.count(table=t) == 3
    # As primary, setval survives a rollback: the shadow would have broken the next insert.
    with engine.connect() as c:
        c.exec_driver_sql(setval)
        c.rollback()
    assert pg.oracle(f"SELECT last_value FROM {t}_id_seq")[0][0] == 1


def test_nextval_leaves_a_gap_only(pg: Backend, sequence_table: str) -> None:
    t = sequence_table
    engine = pg.engine()
    with shadowguard.shadow(), engine.begin() as c:
        assert c.exec_driver_sql(f"SELECT nextval('{t}_id_seq')").scalar() == 3
    with engine.begin() as c:
        assert c.exec_driver_sql(f"INSERT INTO {t} DEFAULT VALUES RETURNING id").scalar() == 4


def test_pg_notify_on_autocommit_is_refused(pg: Backend) -> None:
    import psycopg

    channel = f"sg_{uuid.uuid4().hex[:8]}"
    engine = pg.engine(isolation_level="AUTOCOMMIT")
    notify = f"SELECT pg_notify('{channel}', 'x')"
    with psycopg.connect(pg.dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {channel}")
        with shadowguard.shadow(), engine.connect() as c, pytest.raises(ShadowSideEffectBlocked):
            c.exec_driver_sql(notify)
        assert list(listener.notifies(timeout=0.3, stop_after=1)) == []
        with engine.connect() as c:
            c.exec_driver_sql(notify)
        assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == ["x"]


# -- MySQL and MariaDB commit before some statements -----------------------------------


@pytest.mark.parametrize("sql", ["BEGIN", "START TRANSACTION", "SET autocommit = 1"])
def test_mariadb_implicit_commit_is_refused(mariadb_table: tuple[Any, str, Any], sql: str) -> None:
    engine, t, oracle = mariadb_table

    def run() -> None:
        with engine.connect() as c:
            c.execute(insert(core(t)).values(id=1))
            c.exec_driver_sql(sql)
            c.rollback()

    def count() -> int:
        with oracle.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {t}")
            return int(cursor.fetchone()[0])

    with shadowguard.shadow(), pytest.raises(ShadowSideEffectBlocked, match=r"MySQL|SET"):
        run()
    assert count() == 0
    run()  # as primary, the statement commits the insert: the rollback comes too late
    assert count() == 1
