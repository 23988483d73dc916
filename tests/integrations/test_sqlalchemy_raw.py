"""Raw DBAPI connections from SQLAlchemy's pool in shadow (issue #12, leak 4).

``commit()`` on the pool's proxy (``engine.raw_connection()``, ``Connection.connection``)
used to reach the driver and persist in shadow; it is refused. A raw connection checked
out in shadow is rolled back and its session state restored when the scope ends or it
returns to the pool, whichever comes first. Rows are counted by an oracle of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from tests.integrations._sa_backends import Backend, advisory_locks, checked_out
from tests.integrations._sa_backends import backend as backend  # a fixture

SINK = "sqlalchemy"
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("installed")]


def _raw_connection(engine: Engine) -> Any:
    return engine.raw_connection()


def _connection_attribute(engine: Engine) -> Any:
    conn = engine.connect()
    conn.exec_driver_sql("SELECT 1")
    conn.commit()
    return conn.connection


PROXIES: dict[str, Callable[[Engine], Any]] = {
    "engine.raw_connection()": _raw_connection,
    "Connection.connection": _connection_attribute,
}


@pytest.mark.parametrize("proxy", sorted(PROXIES))
def test_a_raw_commit_in_shadow_is_refused(backend: Backend, proxy: str) -> None:
    engine = backend.engine()
    with shadowguard.shadow() as scope:
        raw = PROXIES[proxy](engine)
        cursor = raw.cursor()
        cursor.execute(f"INSERT INTO {backend.table} (id) VALUES (1)")
        with pytest.raises(ShadowSideEffectBlocked, match="raw DBAPI connection"):
            raw.commit()
        cursor.close()
        raw.close()
    assert scope.suppressed[-1].detail["operation"] == "commit"
    assert backend.count() == 0
    raw = PROXIES[proxy](engine)  # as primary the same code stores the row
    cursor = raw.cursor()
    cursor.execute(f"INSERT INTO {backend.table} (id) VALUES (1)")
    raw.commit()
    cursor.close()
    raw.close()
    assert backend.count() == 1
    engine.dispose()


@pytest.mark.parametrize("reset_on_return", ["rollback", "commit"])
def test_a_raw_connection_kept_across_the_scope_keeps_nothing_of_it(
    backend: Backend, reset_on_return: str
) -> None:
    """Checked out in shadow, kept: the primary's later commit stores only its own row."""
    engine = backend.engine(pool_reset_on_return=reset_on_return)
    with shadowguard.shadow():
        raw = engine.raw_connection()
        cursor = raw.cursor()
        cursor.execute(f"INSERT INTO {backend.table} (id) VALUES (99)")
        cursor.close()
    cursor = raw.cursor()
    cursor.execute(f"INSERT INTO {backend.table} (id) VALUES (1)")
    cursor.close()
    raw.commit()
    raw.close()
    assert backend.oracle(f"SELECT id FROM {backend.table}") == [(1,)]
    assert checked_out(engine) == 0


def test_a_raw_connection_from_the_scope_keeps_no_session_state(pg: Backend) -> None:
    engine = pg.engine(pool_size=1, max_overflow=0)
    with shadowguard.shadow():
        raw = engine.raw_connection()
        cursor: Any = raw.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        cursor.execute("SET search_path = pg_catalog")
        cursor.execute("SELECT pg_advisory_lock(4242)")
        cursor.close()
    cursor = raw.cursor()  # kept: the scope's end put it back
    cursor.execute("SHOW search_path")
    assert cursor.fetchone()[0] == '"$user", public'
    cursor.close()
    raw.close()
    assert advisory_locks(pg, pid) == 0
    with shadowguard.shadow():
        raw = engine.raw_connection()
        raw.cursor().execute("SET search_path = pg_catalog")
        raw.close()  # returned within the scope: the pool puts it back
    with engine.connect() as c:
        assert c.execute(text("SELECT pg_backend_pid()")).scalar() == pid
        assert c.execute(text("SHOW search_path")).scalar() == '"$user", public'
