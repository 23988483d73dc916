"""The SQLAlchemy guard leaves no trace on pooled PostgreSQL connections used in shadow.

Session settings, advisory locks, LISTEN channels, temporary tables and roles the shadow
set are gone when the connection is next checked out; the primary's own state stays.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

import shadowguard
from shadowguard.integrations.sqlalchemy import _pg_state
from tests.integrations._sa_backends import Backend, advisory_locks

SINK = "sqlalchemy"
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("installed")]


# -- no trace on pooled connections ----------------------------------------------------


@pytest.mark.parametrize("autocommit", [False, True])
def test_pooled_connection_keeps_no_session_state(pg: Backend, autocommit: bool) -> None:
    engine = pg.engine(pool_size=1, max_overflow=0)
    with shadowguard.shadow(), engine.connect() as c:
        if autocommit:
            c = c.execution_options(isolation_level="AUTOCOMMIT")
        pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
        c.execute(text("SET statement_timeout = 4321"))
        c.execute(text("SET search_path = pg_catalog, public"))
        c.execute(text("SELECT pg_advisory_lock(424242)"))
        c.execute(text("CREATE TEMP TABLE sg_tmp (i INTEGER)"))
        c.execute(text("LISTEN sg_channel"))
        c.commit()
        assert advisory_locks(pg, pid) == 1
    with engine.connect() as c:
        assert c.execute(text("SELECT pg_backend_pid()")).scalar() == pid  # the same connection
        assert c.execute(text("SHOW statement_timeout")).scalar() == "0"
        assert c.execute(text("SHOW search_path")).scalar() == '"$user", public'
        assert c.execute(text("SELECT to_regclass('pg_temp.sg_tmp')")).scalar() is None
        assert c.execute(text("SELECT count(*) FROM pg_listening_channels()")).scalar() == 0
    assert advisory_locks(pg, pid) == 0


@pytest.mark.parametrize(
    "sql",
    [
        "SET ROLE {role}",
        "SET SESSION AUTHORIZATION {role}",
        "SELECT set_config('role', '{role}', false)",
    ],
)
@pytest.mark.parametrize("primary_role", [False, True])
def test_a_shadow_role_does_not_outlive_the_checkout(
    pg: Backend, role: str, sql: str, primary_role: bool
) -> None:
    """Neither SET ROLE nor SET SESSION AUTHORIZATION is in pg_settings or reset by RESET ALL."""
    engine = pg.engine(pool_size=1, max_overflow=0)
    expected = ("postgres", "postgres")
    if primary_role:
        expected = ("postgres", "pg_monitor")

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET ROLE pg_monitor")
            dbapi_connection.commit()

    users = text("SELECT session_user::text, current_user::text")
    with engine.connect() as c:
        pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
        assert tuple(c.execute(users).one()) == expected
    with shadowguard.shadow(), engine.connect() as c:
        c = c.execution_options(isolation_level="AUTOCOMMIT")
        c.execute(text(sql.format(role=role)))
        assert c.execute(text("SELECT current_user::text")).scalar() == role
    with engine.connect() as c:
        assert c.execute(text("SELECT pg_backend_pid()")).scalar() == pid  # restored, not dropped
        assert tuple(c.execute(users).one()) == expected


def _primary_session_state(engine: Any, temp_table: bool = False) -> None:
    """A connect hook, as applications have: the state every primary checkout relies on."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET statement_timeout = 7777")
        cursor.execute("SET application_name = 'primary-app'")
        if temp_table:
            cursor.execute("CREATE TEMP TABLE primary_tmp (i INTEGER)")
        cursor.close()
        dbapi_connection.commit()


def test_primary_session_state_survives_shadow_use(pg: Backend) -> None:
    """The clean-up undoes the shadow's changes only: a connect hook's SETs stay."""
    engine = pg.engine(pool_size=1, max_overflow=0)
    _primary_session_state(engine)
    with engine.connect() as c:
        pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
    with shadowguard.shadow(), engine.connect() as c:
        c = c.execution_options(isolation_level="AUTOCOMMIT")
        c.execute(text("SET statement_timeout = 4321"))
        c.execute(text("SET application_name = 'shadow'"))
        c.execute(text("SELECT set_config('sg.custom', 'x', false)"))
        c.execute(text("SELECT pg_advisory_lock(1, 2)"))
        c.execute(text("SELECT pg_advisory_lock_shared(99)"))
        c.execute(text('LISTEN "Odd Channel"'))
    with engine.connect() as c:
        assert c.execute(text("SELECT pg_backend_pid()")).scalar() == pid
        assert c.execute(text("SHOW statement_timeout")).scalar() == "7777ms"
        assert c.execute(text("SHOW application_name")).scalar() == "primary-app"
        assert c.execute(text("SELECT current_setting('sg.custom', true)")).scalar() in ("", None)
        assert c.execute(text("SELECT count(*) FROM pg_listening_channels()")).scalar() == 0
    assert advisory_locks(pg, pid) == 0


def test_the_shadow_temporary_table_goes_and_the_primary_one_stays(pg: Backend) -> None:
    """The primary has a temporary table of its own: only the shadow's is dropped, by name."""
    engine = pg.engine(pool_size=1, max_overflow=0)
    _primary_session_state(engine, temp_table=True)
    with shadowguard.shadow(), engine.connect() as c:
        c = c.execution_options(isolation_level="AUTOCOMMIT")
        pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
        c.execute(text("CREATE TEMP TABLE shadow_tmp (i SERIAL)"))
    with engine.connect() as c:
        assert c.execute(text("SELECT pg_backend_pid()")).scalar() == pid  # restored, kept
        assert c.execute(text("SELECT to_regclass('pg_temp.shadow_tmp')")).scalar() is None
        assert c.execute(text("SELECT to_regclass('pg_temp.primary_tmp')")).scalar() is not None
        assert c.execute(text("SHOW statement_timeout")).scalar() == "7777ms"


def test_a_connection_that_cannot_be_restored_is_discarded(
    pg: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clean-up cannot undo the shadow's state (here: it is made to fail): start afresh."""
    engine = pg.engine(pool_size=1, max_overflow=0)
    _primary_session_state(engine, temp_table=True)
    monkeypatch.setattr(_pg_state, "_undo", lambda cursor, before, after: None)
    with shadowguard.shadow(), engine.connect() as c:
        c = c.execution_options(isolation_level="AUTOCOMMIT")
        pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
        c.execute(text("CREATE TEMP TABLE shadow_tmp (i INTEGER)"))
    with engine.connect() as c:
        assert c.execute(text("SELECT pg_backend_pid()")).scalar() != pid
        assert c.execute(text("SELECT to_regclass('pg_temp.shadow_tmp')")).scalar() is None
        assert c.execute(text("SELECT to_regclass('pg_temp.primary_tmp')")).scalar() is not None
        assert c.execute(text("SHOW statement_timeout")).scalar() == "7777ms"


def test_server_side_cursors_in_shadow(pg: Backend) -> None:
    pg.execute(f"INSERT INTO {pg.table} (id) SELECT generate_series(1, 50)")
    engine = pg.engine()
    with shadowguard.shadow(), engine.connect() as c:
        rows = c.execution_options(stream_results=True, max_row_buffer=5).execute(
            text(f"SELECT id FROM {pg.table} ORDER BY id")
        )
        assert [r[0] for r in rows] == list(range(1, 51))
