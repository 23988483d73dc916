"""Connections kept across a shadow scope: the shadow's session state ends with the scope.

A connection a worker keeps checked out (or any connection not returned to the pool
before the scope ends) used to keep a shadow ``SET search_path``, ``set_config()``,
``SET ROLE``, ``statement_timeout`` or advisory lock until its check-in, changing later
primary statements on it (issue #12, change 8). On MySQL and MariaDB it outlived even the
check-in: there it is refused. Each check reads the state on the same connection, and
locks through a connection of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, text
from sqlalchemy.ext.asyncio import create_async_engine

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from tests.integrations._sa_backends import Backend, advisory_locks, core

SINK = "sqlalchemy"
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("installed")]

STATE = text(
    "SELECT current_setting('search_path'), current_setting('statement_timeout'),"
    " nullif(current_setting('sg.custom', true), ''), current_user::text,"
    " (SELECT count(*) FROM pg_listening_channels()),"
    " (SELECT count(*) FROM pg_prepared_statements WHERE from_sql),"
    " to_regclass('pg_temp.shadow_tmp') IS NULL"
)


SHADOW_STATE = {
    "SET search_path": ["SET search_path = pg_catalog"],
    "set_config": ["SELECT set_config('sg.custom', 'shadow', false)"],
    "SET a custom setting": ["SET sg.custom = 'shadow'"],
    "SET ROLE": ["SET ROLE {role}"],
    "statement_timeout": ["SET statement_timeout = 4321"],
    # Taken twice each: a session lock is held until unlocked as often as it was taken.
    "advisory lock": [
        "SELECT pg_advisory_lock(4242)",
        "SELECT pg_advisory_lock(4242)",
        "SELECT pg_advisory_lock_shared(7, 8)",
        "SELECT pg_advisory_lock_shared(7, 8)",
    ],
    "LISTEN": ["LISTEN shadow_channel"],
    "temporary table": ["CREATE TEMP TABLE shadow_tmp (i INTEGER)"],
    "PREPARE": ["PREPARE shadow_plan AS SELECT 1"],
}
# PREPARE is refused on an autocommit connection (an unknown statement there).
CASES = [
    pytest.param(change, autocommit, id=f"{change}-{'AUTOCOMMIT' if autocommit else 'transaction'}")
    for change in sorted(SHADOW_STATE)
    for autocommit in (True, False)
    if not (autocommit and change == "PREPARE")
]


@pytest.mark.parametrize(("change", "autocommit"), CASES)
def test_the_shadow_session_state_ends_with_the_scope(
    pg: Backend, role: str, change: str, autocommit: bool
) -> None:
    engine = pg.engine()
    with engine.connect() as c:
        if autocommit:
            c = c.execution_options(isolation_level="AUTOCOMMIT")
        pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
        before = tuple(c.execute(STATE).one())
        c.rollback()
        with shadowguard.shadow():
            for sql in SHADOW_STATE[change]:
                c.execute(text(sql.format(role=role)))
            if not autocommit:
                c.commit()  # suppressed: a rollback
        # the same connection, still checked out, as primary
        assert c.execute(text("SELECT pg_backend_pid()")).scalar() == pid
        assert tuple(c.execute(STATE).one()) == before
        assert advisory_locks(pg, pid) == 0
        c.rollback()


def test_inside_the_primary_transaction_only_the_shadow_state_goes(pg: Backend) -> None:
    """The scope rolls back to its savepoint; what survives that (locks, PREPARE) is undone
    by name, without ending the primary's transaction or touching its own lock."""
    engine = pg.engine()
    with engine.connect() as c:
        c.execute(text("SELECT pg_advisory_lock(1)"))  # the primary's own
        c.execute(insert(core(pg.table)).values(id=1))
        pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
        with shadowguard.shadow():
            for _ in range(3):  # held until unlocked three times
                c.execute(text("SELECT pg_advisory_lock(4242)"))
            c.execute(text("PREPARE shadow_plan AS SELECT 1"))
            c.execute(insert(core(pg.table)).values(id=99))
            c.execute(text("SET search_path = pg_catalog"))
        assert c.execute(text("SHOW search_path")).scalar() == '"$user", public'
        assert c.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar() == 0
        assert advisory_locks(pg, pid) == 1
        c.execute(insert(core(pg.table)).values(id=2))
        c.commit()
        c.execute(text("SELECT pg_advisory_unlock(1)"))
        c.commit()
    assert pg.oracle(f"SELECT id FROM {pg.table} ORDER BY id") == [(1,), (2,)]


def test_a_kept_connection_keeps_the_primary_session_state(pg: Backend) -> None:
    """The primary's own SET on the kept connection stays; only the shadow's goes."""
    engine = pg.engine()
    with engine.connect() as c:
        c = c.execution_options(isolation_level="AUTOCOMMIT")
        c.execute(text("SET application_name = 'primary-worker'"))
        c.execute(text("SET statement_timeout = 7777"))
        with shadowguard.shadow():
            c.execute(text("SET application_name = 'shadow'"))
            c.execute(text("RESET statement_timeout"))
        assert c.execute(text("SHOW application_name")).scalar() == "primary-worker"
        assert c.execute(text("SHOW statement_timeout")).scalar() == "7777ms"


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_an_async_kept_connection_is_dropped_at_scope_end(pg: Backend, driver: str) -> None:
    """No IO where an asyncio scope ends: the connection is dropped, the next use reconnects."""
    engine = create_async_engine(pg.url.replace("+psycopg", f"+{driver}"))
    try:
        async with engine.connect() as c:
            ac: Any = await c.execution_options(isolation_level="AUTOCOMMIT")
            pid = await ac.scalar(text("SELECT pg_backend_pid()"))
            await ac.commit()  # else the shadow would be inside the primary's transaction
            async with shadowguard.shadow():
                await ac.execute(text("SET search_path = pg_catalog"))
                await ac.execute(text("SELECT pg_advisory_lock(4242)"))
            assert (await ac.scalar(text("SHOW search_path"))) == '"$user", public'
            assert (await ac.scalar(text("SELECT pg_backend_pid()"))) != pid
        for _ in range(50):  # the dropped connection's backend ends when its socket closes
            if advisory_locks(pg, pid) == 0:
                break
            await asyncio.sleep(0.1)
        assert advisory_locks(pg, pid) == 0
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "sql", ["SET time_zone = '+05:00'", "SET SESSION sql_mode = ''", "SELECT GET_LOCK('sg', 0)"]
)
def test_session_state_is_refused_on_mariadb(mariadb_url: str, sql: str) -> None:
    """No restore on MySQL and MariaDB: the state outlived even the pool's check-in."""
    engine = create_engine(mariadb_url, pool_size=1, max_overflow=0)
    state = text("SELECT @@session.time_zone, @@session.sql_mode, IS_USED_LOCK('sg')")
    try:
        with engine.connect() as c:
            before = tuple(c.execute(state).one())
        with (
            shadowguard.shadow(),
            engine.connect() as c,
            pytest.raises(ShadowSideEffectBlocked, match="session"),
        ):
            c.execute(text(sql))
        with engine.connect() as c:
            assert tuple(c.execute(state).one()) == before
            c.execute(text(sql))  # as primary it changes the session
            assert tuple(c.execute(state).one()) != before
    finally:
        engine.dispose()
