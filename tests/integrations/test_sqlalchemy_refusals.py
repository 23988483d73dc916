"""The SQLAlchemy guard refuses, before execution, what no rollback undoes; refusals are recorded.

Each refusal leaves nothing behind in the database (asked of an oracle of its own), and the
same code as primary shows that the effect is real.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, event, insert, text
from sqlalchemy.orm import Session

import shadowguard
from shadowguard import Action, Kind, ShadowSideEffectBlocked
from tests.integrations._sa_backends import Backend, assert_refused_then_stored, core, model
from tests.integrations._sa_backends import backend as backend  # a fixture

SINK = "sqlalchemy"
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("installed")]


# -- refused before execution ----------------------------------------------------------

REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "a write on an autocommit connection": (
        {"isolation_level": "AUTOCOMMIT"},
        "INSERT INTO {t} (id) VALUES (1)",
    ),
    "a commit behind the write": ({}, "INSERT INTO {t} (id) VALUES (1); COMMIT"),
}


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_a_refusal_is_recorded_in_the_scope(pg: Backend, refusal: str) -> None:
    """A refusal is counted: a blocked record carries the error raised. No row is stored."""
    engine_options, sql = REFUSALS[refusal]
    engine = pg.engine(**engine_options)
    sql = sql.format(t=pg.table)
    with (
        shadowguard.shadow() as scope,
        engine.connect() as c,
        pytest.raises(ShadowSideEffectBlocked) as refused,
    ):
        c.exec_driver_sql(sql)
    (record,) = scope.suppressed
    assert record.kind == Kind.DB_COMMIT
    assert record.blocked
    assert record.detail["action"] == Action.BLOCKED == "blocked"
    assert record.detail["operation"] == "execute"
    assert record.detail["tables"] == (pg.table,)
    assert record.error is refused.value
    assert record.target == engine.url.render_as_string(hide_password=True)
    assert pg.count() == 0
    with engine.connect() as c:  # as primary the same statement stores the row
        c.exec_driver_sql(sql)
        c.rollback()
    assert pg.count() == 1


@pytest.mark.parametrize("how", ["engine", "execution_options", "driver"])
def test_writes_on_autocommit_connections_are_refused(backend: Backend, how: str) -> None:
    engine = backend.engine(**({"isolation_level": "AUTOCOMMIT"} if how == "engine" else {}))
    if how == "driver":

        @event.listens_for(engine, "connect")
        def driver_autocommit(dbapi_connection: Any, record: Any) -> None:
            if backend.name == "sqlite":
                dbapi_connection.isolation_level = None
            else:
                dbapi_connection.autocommit = True

    def run() -> None:
        with engine.connect() as c:
            if how == "execution_options":
                c = c.execution_options(isolation_level="AUTOCOMMIT")
            assert c.execute(text("SELECT 1")).scalar() == 1  # reads are fine
            c.execute(insert(core(backend.table)).values(id=1))

    with shadowguard.shadow(), pytest.raises(ShadowSideEffectBlocked, match="AUTOCOMMIT"):
        run()
    assert backend.count() == 0
    run()
    assert backend.count() == 1


def test_unknown_statements_on_autocommit_fail_closed(pg: Backend) -> None:
    engine = pg.engine(isolation_level="AUTOCOMMIT")
    sql = text(f"DO $$ BEGIN INSERT INTO {pg.table} (id) VALUES (1); END $$")
    assert_refused_then_stored(pg, engine, lambda c: c.execute(sql), match="DO on an AUTOCOMMIT")


@pytest.mark.parametrize(
    "sql",
    [
        "COMMIT",
        "  /* why */ commit",
        "END",
        "COMMIT PREPARED 'sg'",
        "ROLLBACK PREPARED 'sg'",
        "PREPARE TRANSACTION 'sg'",
    ],
)
def test_transaction_control_in_sql_text_is_refused(backend: Backend, sql: str) -> None:
    engine = backend.engine()
    with shadowguard.shadow(), engine.connect() as c:
        c.execute(insert(core(backend.table)).values(id=1))
        with pytest.raises(ShadowSideEffectBlocked):
            c.execute(text(sql))
    assert backend.count() == 0


@pytest.mark.parametrize(
    "ddl",
    [
        "create_all",
        "CREATE TABLE {t}_new (i INTEGER)",
        "DROP TABLE {t}",
        "ALTER TABLE {t} ADD x INT",
    ],
)
@pytest.mark.parametrize("autocommit", [False, True])
def test_ddl_is_refused(backend: Backend, ddl: str, autocommit: bool) -> None:
    kwargs = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    engine = backend.engine(**kwargs)
    t = backend.table
    with shadowguard.shadow(), pytest.raises(ShadowSideEffectBlocked):  # noqa: PT012
        if ddl == "create_all":
            metadata = MetaData()
            Table(f"{t}_meta", metadata, Column("i", Integer))
            metadata.create_all(engine)
        else:
            with engine.begin() as c:
                c.execute(text(ddl.format(t=t)))
    tables = (
        backend.oracle("SELECT name FROM sqlite_master WHERE type = 'table'")
        if backend.name == "sqlite"
        else backend.oracle("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    )
    names = {r[0] for r in tables}
    assert t in names
    assert f"{t}_new" not in names
    assert f"{t}_meta" not in names
    assert backend.count() == 0  # the table is intact and has no column x
    backend.oracle(f"SELECT id, name, n FROM {t}")


@pytest.mark.parametrize("how", ["session", "connection"])
def test_two_phase_commit_is_refused(pg: Backend, how: str) -> None:
    engine = pg.engine()
    with (  # noqa: PT012
        shadowguard.shadow() as scope,
        pytest.raises(ShadowSideEffectBlocked, match="two-phase") as refused,
    ):
        if how == "session":
            with Session(engine, twophase=True) as s:
                s.add(model(pg.table)(id=1))
                s.commit()
        else:
            with engine.connect() as c:
                c.begin_twophase()
    (record,) = (s for s in scope.suppressed if s.blocked)
    assert (record.detail["operation"], record.error) == ("begin_twophase", refused.value)
    assert pg.oracle("SELECT count(*) FROM pg_prepared_xacts")[0][0] == 0
    assert pg.count() == 0
