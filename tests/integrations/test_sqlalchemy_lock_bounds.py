"""Lock bounds of shadow transactions on real PostgreSQL (issue 19).

A shadow transaction waits for the primary's locks only ``db_lock_timeout_ms``; one that
holds a lock the primary waits on is cut off by its bounds or by the scope's end; the
bounds are transaction-local, so the pooled connection the primary gets next has the
server's defaults. The primary's waits are observed from a third connection
(``pg_blocking_pids``), never from the guard's bookkeeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

import shadowguard
from shadowguard import _config
from tests.integrations._sa_backends import Backend, model
from tests.integrations._support import refusal_seconds_behind, shadow_refusal_seconds

SINK = "sqlalchemy"
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("installed")]

BOUNDS = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")


@pytest.fixture
def bounds() -> Iterator[Any]:
    """``bounds(**settings)`` configures the process for the test; reset afterwards."""
    try:
        yield _config.configure
    finally:
        _config.reset()


def shown(conn: Connection) -> dict[str, str]:
    return {name: conn.execute(text(f"SHOW {name}")).scalar_one() for name in BOUNDS}


def server_defaults(pg: Backend) -> dict[str, str]:
    return {name: pg.oracle(f"SHOW {name}")[0][0] for name in BOUNDS}


def primary_holding(pg: Backend, sql: str) -> psycopg.Connection[Any]:
    """A primary connection, outside SQLAlchemy, in a transaction that ran ``sql``."""
    primary = psycopg.connect(pg.dsn)
    primary.execute(sql)
    return primary


def pid_of(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def state_of(pg: Backend, pid: int) -> str | None:
    rows = pg.oracle(f"SELECT state FROM pg_stat_activity WHERE pid = {pid}")
    return rows[0][0] if rows else None


# -- the shadow waits for the primary only briefly --------------------------------------


def test_shadow_insert_of_a_key_the_primary_holds_fails_in_milliseconds(pg: Backend) -> None:
    """The primary's uncommitted row holds the key: the shadow's insert times out at once."""
    primary = primary_holding(pg, f"INSERT INTO {pg.table} (id, name) VALUES (1, 'primary')")
    insert = f"INSERT INTO {pg.table} (id, name) VALUES (1, 'shadow')"
    waited = refusal_seconds_behind(primary, pg.engine(), insert, "lock timeout")
    assert waited < 0.6, f"the shadow waited {waited:.3f} s for the primary's lock"
    assert pg.oracle(f"SELECT id, name FROM {pg.table}") == [(1, "primary")]


def test_a_savepoint_inside_the_shadow_transaction_is_bounded_too(pg: Backend) -> None:
    primary = primary_holding(pg, f"INSERT INTO {pg.table} (id) VALUES (2)")
    engine = pg.engine()
    try:
        with shadowguard.shadow(), engine.begin() as c:
            with c.begin_nested():
                assert shown(c)["lock_timeout"] == "100ms"
            started = time.monotonic()
            with pytest.raises(DBAPIError, match="lock timeout"), c.begin_nested():
                c.execute(text(f"INSERT INTO {pg.table} (id) VALUES (2)"))
            assert time.monotonic() - started < 0.6
        primary.rollback()
    finally:
        primary.close()
    assert pg.count() == 0


def test_a_statement_longer_than_the_bound_is_cancelled(pg: Backend, bounds: Any) -> None:
    bounds(db_statement_timeout_ms=200)
    engine = pg.engine()
    assert shadow_refusal_seconds(engine, "SELECT pg_sleep(5)", "statement timeout") < 1.5


# -- the primary waits for the shadow only briefly --------------------------------------


def _primary_update_timed(pg: Backend, sql: str, out: dict[str, Any]) -> None:
    with psycopg.connect(pg.dsn) as primary:
        out["pid"] = primary.info.backend_pid
        started = time.monotonic()
        primary.execute(sql)
        out["waited"] = time.monotonic() - started
        primary.commit()


def _blockers(pg: Backend, out: dict[str, Any], done: threading.Event) -> None:
    """From a third connection: the pids blocking the primary, while it waits."""
    seen: set[int] = set()
    with psycopg.connect(pg.dsn, autocommit=True) as third:
        while not done.is_set():
            pid = out.get("pid")
            if pid is not None:
                row = third.execute("SELECT pg_blocking_pids(%s)", (pid,)).fetchone()
                seen.update(row[0] if row else ())
            time.sleep(0.01)
    out["blockers"] = seen


def _primary_waits_on(pg: Backend, shadow_work: Any) -> dict[str, Any]:
    """Run ``shadow_work(locked)`` in a thread; once it holds its lock, the primary updates."""
    pg.execute(f"INSERT INTO {pg.table} (id, name) VALUES (1, 'before')")
    locked, done = threading.Event(), threading.Event()
    out: dict[str, Any] = {}
    shadow = threading.Thread(target=shadow_work, args=(locked, out))
    shadow.start()
    assert locked.wait(5)
    watcher = threading.Thread(target=_blockers, args=(pg, out, done))
    watcher.start()
    try:
        _primary_update_timed(pg, f"UPDATE {pg.table} SET name = 'primary' WHERE id = 1", out)
    finally:
        done.set()
        watcher.join()
        shadow.join()
    return out


def test_a_shadow_idle_in_transaction_is_cut_off_for_the_waiting_primary(
    pg: Backend, bounds: Any
) -> None:
    """The shadow takes the row lock and sleeps: the server ends it after the idle bound."""
    bounds(db_idle_timeout_ms=300)
    engine = pg.engine()

    def shadow_work(locked: threading.Event, out: dict[str, Any]) -> None:
        with shadowguard.shadow(), engine.connect() as c:
            out["shadow_pid"] = pid_of(c)
            c.execute(text(f"UPDATE {pg.table} SET name = 'shadow' WHERE id = 1"))
            locked.set()
            time.sleep(2)  # a hung shadow handler, its transaction open
            with pytest.raises(DBAPIError):
                c.execute(text("SELECT 1"))  # its session was terminated

    out = _primary_waits_on(pg, shadow_work)
    assert out["shadow_pid"] in out["blockers"], "the primary did not wait on the shadow"
    assert out["waited"] < 1.2, f"the primary waited {out['waited']:.3f} s"
    assert pg.oracle(f"SELECT name FROM {pg.table}") == [("primary",)]


def test_the_scope_end_releases_the_waiting_primary(pg: Backend) -> None:
    """A Session the shadow forgot to close: its transaction ends with the scope, not later."""
    engine = pg.engine()
    Row = model(pg.table)

    def shadow_work(locked: threading.Event, out: dict[str, Any]) -> None:
        with shadowguard.shadow():
            session = Session(engine)
            session.get(Row, 1, with_for_update=True)
            out["shadow_pid"] = pid_of(session.connection())
            locked.set()
            time.sleep(0.5)
        out["ended"] = time.monotonic()
        out["state"] = state_of(pg, out["shadow_pid"])
        time.sleep(1)  # the forgotten Session lives on
        session.close()

    out = _primary_waits_on(pg, shadow_work)
    assert out["shadow_pid"] in out["blockers"]
    assert out["waited"] < 1.0, f"the primary waited {out['waited']:.3f} s"
    assert out["state"] == "idle"


# -- the scope's end and the next primary use of the connection -------------------------


@pytest.mark.parametrize("api", ["connection", "session"])
def test_a_forgotten_shadow_transaction_is_not_left_idle_in_transaction(
    pg: Backend, api: str
) -> None:
    engine = pg.engine()
    Row = model(pg.table)
    with shadowguard.shadow():
        if api == "connection":
            kept: Any = engine.connect()
            kept.execute(text(f"INSERT INTO {pg.table} (id) VALUES (7)"))
            pid = pid_of(kept)
        else:
            kept = Session(engine)
            kept.add(Row(id=7))
            kept.flush()
            pid = pid_of(kept.connection())
        assert state_of(pg, pid) == "idle in transaction"
    try:
        assert state_of(pg, pid) == "idle"
        locks = pg.oracle(f"SELECT count(*) FROM pg_locks WHERE pid = {pid}")[0][0]
        assert locks == 0
    finally:
        kept.close()
    assert pg.count() == 0


def test_the_primary_gets_the_pooled_connection_back_with_server_defaults(pg: Backend) -> None:
    engine = pg.engine(pool_size=1, max_overflow=0)
    defaults = server_defaults(pg)
    with shadowguard.shadow(), engine.begin() as c:
        shadow_pid = pid_of(c)
        c.execute(text(f"INSERT INTO {pg.table} (id) VALUES (3)"))
        assert shown(c) == {
            "lock_timeout": "100ms",
            "statement_timeout": "5s",
            "idle_in_transaction_session_timeout": "5s",
        }
    with engine.begin() as c:
        assert pid_of(c) == shadow_pid
        assert shown(c) == defaults
        c.execute(text(f"INSERT INTO {pg.table} (id) VALUES (4)"))
    assert pg.ids() == [4]


@pytest.mark.parametrize(
    "loosen",
    [
        "SET statement_timeout = '42s'",
        "SET LOCAL lock_timeout = 0",
        "SELECT set_config('idle_in_transaction_session_timeout', '0', false)",
        "RESET ALL",
    ],
)
def test_shadow_code_cannot_lift_its_bounds_and_the_primary_never_sees_its_set(
    pg: Backend, loosen: str
) -> None:
    """The bounds are set again before the next statement; a session SET is put back."""
    engine = pg.engine(pool_size=1, max_overflow=0)
    defaults = server_defaults(pg)
    bounded = {
        "lock_timeout": "100ms",
        "statement_timeout": "5s",
        "idle_in_transaction_session_timeout": "5s",
    }
    with shadowguard.shadow(), engine.connect() as c:
        c.execute(text("SELECT 1"))
        c.execute(text(loosen))
        assert shown(c) == bounded
        c.commit()
        assert shown(c) == bounded  # a new transaction
    with engine.connect() as c:
        assert shown(c) == defaults


def test_bounds_switched_off_leave_the_server_settings(pg: Backend, bounds: Any) -> None:
    bounds(db_lock_timeout_ms=None, db_statement_timeout_ms=None, db_idle_timeout_ms=250)
    engine = pg.engine()
    defaults = server_defaults(pg)
    with shadowguard.shadow(), engine.begin() as c:
        assert shown(c) == {**defaults, "idle_in_transaction_session_timeout": "250ms"}


def test_an_autocommit_connection_gets_no_bounds(pg: Backend) -> None:
    """No transaction to bound: shadow writes are refused there, reads hold no row locks."""
    engine = pg.engine(isolation_level="AUTOCOMMIT")
    defaults = server_defaults(pg)
    with shadowguard.shadow(), engine.connect() as c:
        assert shown(c) == defaults


def test_a_primary_transaction_the_shadow_joins_is_not_bounded(pg: Backend) -> None:
    """Bounds inside the primary's transaction would cut off the primary: none are set."""
    engine = pg.engine()
    defaults = server_defaults(pg)
    with engine.connect() as c:
        c.execute(text(f"INSERT INTO {pg.table} (id) VALUES (5)"))
        with shadowguard.shadow():
            assert shown(c) == defaults
        c.commit()
    assert pg.ids() == [5]


def test_a_session_savepoint_that_times_out_lets_the_shadow_go_on(pg: Backend) -> None:
    """``begin_nested()`` in a shadow Session: the timeout undoes the savepoint only."""
    primary = primary_holding(pg, f"INSERT INTO {pg.table} (id) VALUES (1)")
    Row = model(pg.table)
    engine = pg.engine()
    try:
        with shadowguard.shadow(), Session(engine) as session:
            started = time.monotonic()
            with pytest.raises(DBAPIError, match="lock timeout"), session.begin_nested():
                session.add(Row(id=1))
            assert time.monotonic() - started < 0.6
            session.add(Row(id=2))
            session.commit()
            assert session.get(Row, 2) is not None
        primary.rollback()
    finally:
        primary.close()
    assert pg.count() == 0


def test_a_whole_shadow_process_is_bounded_too(pg: Backend, bounds: Any) -> None:
    """``SHADOW_MODE=true``: no scope, every transaction is the shadow's."""
    bounds(mode="shadow")
    engine = pg.engine(pool_size=1, max_overflow=0)
    with engine.begin() as c:
        assert shown(c)["lock_timeout"] == "100ms"
        c.execute(text(f"INSERT INTO {pg.table} (id) VALUES (1)"))
    _config.reset()
    with engine.connect() as c:
        assert shown(c) == server_defaults(pg)
    assert pg.count() == 0


def test_lock_table_as_the_first_statement_is_bounded(pg: Backend) -> None:
    primary = primary_holding(pg, f"LOCK TABLE {pg.table} IN ACCESS EXCLUSIVE MODE")
    engine = pg.engine()
    try:
        lock = f"LOCK TABLE {pg.table} IN SHARE MODE"
        assert shadow_refusal_seconds(engine, lock, "lock timeout") < 0.6
    finally:
        primary.close()
