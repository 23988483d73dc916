"""Faults under the SQLAlchemy guard, on real PostgreSQL (issue #12, fault injection).

A backend terminated (``pg_terminate_backend`` from another connection) in the middle of
a shadow flush, or between the flush and the scope's end; an exception raised inside the
guard's own code. Required each time: the shadow path fails closed (nothing stored, no
shadow object left for a later primary commit), the primary path returns exactly what it
returns unguarded, and the pool serves working connections afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

import shadowguard
from shadowguard.integrations import sqlalchemy as sg
from shadowguard.integrations.sqlalchemy import (
    _connection,
    _dialect,
    _pg_state,
    _session,
    _session_state,
)
from tests.integrations._sa_backends import Backend, checked_out, core, model
from tests.integrations._support import installing

SINK = "sqlalchemy"
pytestmark = pytest.mark.postgres


@pytest.fixture
def slow_pg(pg: Backend) -> Backend:
    """``pg`` whose table sleeps a second before storing a row named 'slow'."""
    pg.execute(
        f"CREATE FUNCTION {pg.table}_slow() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.name = 'slow' THEN PERFORM pg_sleep(1); END IF; RETURN NEW; END $$;"
        f" CREATE TRIGGER {pg.table}_slow BEFORE INSERT ON {pg.table}"
        f" FOR EACH ROW EXECUTE FUNCTION {pg.table}_slow()"
    )
    return pg


def _terminate(pg: Backend, pid: int) -> None:
    pg.oracle(f"SELECT pg_terminate_backend({pid})")
    for _ in range(50):
        if not pg.oracle(f"SELECT 1 FROM pg_stat_activity WHERE pid = {pid}"):
            return
        time.sleep(0.05)


def _terminate_when_busy(pg: Backend) -> threading.Thread:
    """Terminate the backend that runs the slow insert, from another connection."""

    def run() -> None:
        sql = f"SELECT pid FROM pg_stat_activity WHERE query LIKE 'INSERT INTO {pg.table}%'"
        for _ in range(100):
            rows = pg.oracle(sql)
            if rows:
                _terminate(pg, rows[0][0])
                return
            time.sleep(0.02)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _pool_works(pg: Backend, engine: Any) -> None:
    assert checked_out(engine) == 0
    with engine.connect() as c:
        assert c.execute(text("SELECT 1")).scalar() == 1


@pytest.mark.usefixtures("installed")
def test_backend_terminated_in_the_middle_of_a_shadow_flush(slow_pg: Backend) -> None:
    pg = slow_pg
    Row = model(pg.table)
    engine = pg.engine()
    s = Session(engine)  # kept across the scope
    thread = _terminate_when_busy(pg)
    with shadowguard.shadow():
        s.add(Row(id=1, name="slow"))
        s.add(Row(id=2))
        with pytest.raises(sa_exc.OperationalError):
            s.commit()
    thread.join()
    assert len(s.new) == 0
    s.add(Row(id=3))
    s.commit()
    s.close()
    assert pg.oracle(f"SELECT id FROM {pg.table}") == [(3,)]
    _pool_works(pg, engine)


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("kept", ["Session", "Connection"])
def test_backend_terminated_between_the_flush_and_the_scope_end(pg: Backend, kept: str) -> None:
    Row = model(pg.table)
    engine = pg.engine()
    s = Session(engine)
    c = engine.connect()
    with shadowguard.shadow():
        if kept == "Session":
            s.add(Row(id=1))
            s.flush()
            s.add(Row(id=2))  # not flushed
            pid = s.scalar(text("SELECT pg_backend_pid()"))
        else:
            c.execute(insert(core(pg.table)).values(id=1))
            c.execute(text("SET search_path = pg_catalog"))
            pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
        _terminate(pg, pid)
    # the scope's clean-up met a dead connection: the Session and the connection start afresh
    assert len(s.new) == 0
    s.add(Row(id=3))
    s.commit()
    s.close()
    if kept == "Connection":
        c.rollback()
    c.execute(insert(core(pg.table)).values(id=4))
    assert c.execute(text("SHOW search_path")).scalar() == '"$user", public'
    c.commit()
    c.close()
    assert pg.oracle(f"SELECT id FROM {pg.table} ORDER BY id") == [(3,), (4,)]
    _pool_works(pg, engine)


def _primary_workload(pg: Backend, engine: Any) -> list[Any]:
    """What a primary request sees: results, and the errors it meets (by type)."""
    Row = model(pg.table)
    seen: list[Any] = []
    with Session(engine) as s:
        s.add(Row(id=1, name="a"))
        s.commit()
        seen.append((s.get(Row, 1).name, s.get(Row, 1).n))  # type: ignore[union-attr]
        s.add(Row(id=1))
        try:
            s.commit()
        except sa_exc.IntegrityError as exc:
            seen.append(type(exc.orig).__name__)
            s.rollback()
    with engine.begin() as c:
        c.execute(insert(core(pg.table)).values(id=2))
        c.execute(text("SET LOCAL statement_timeout = 1234"))
        seen.append(c.execute(text("SHOW statement_timeout")).scalar())
    raw = engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute(f"INSERT INTO {pg.table} (id) VALUES (3)")
    raw.commit()
    cursor.close()
    raw.close()
    seen.append(pg.oracle(f"SELECT id, name, n FROM {pg.table} ORDER BY id"))
    pg.execute(f"DELETE FROM {pg.table}")
    return seen


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("a fault inside shadowguard")


#: Guard internals the shadow path goes through, each made to raise.
FAULTS: dict[str, tuple[Any, str]] = {
    "statement noted": (_dialect, "note_statement"),
    "session state read": (_pg_state, "snapshot"),
    "session state restored": (_pg_state, "restore"),
    "savepoint rolled back": (_connection, "roll_back_to_savepoint"),
    "commit recorded": (_dialect, "commit_detail"),
    "Session taken": (_session_state, "_holds_primary_work"),
    "Session put back": (_session_state, "_roll_back"),
    "pin released": (_session, "_release"),
}


#: Faults in undoing the shadow's part of a primary transaction (the shadow ran on the
#: primary's connection): failing closed discards that transaction.
ENDS_THE_PRIMARY_TRANSACTION = {"savepoint rolled back", "session state restored"}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_fault_inside_the_guard(
    pg: Backend, fault: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The primary path never runs guard code: it returns exactly what it returns unguarded.
    The shadow path fails closed: an error, or a discarded connection, never a stored row."""
    engine = pg.engine()
    unguarded = _primary_workload(pg, engine)
    module, name = FAULTS[fault]
    monkeypatch.setattr(module, name, _raise)
    with installing(sg):
        assert _primary_workload(pg, engine) == unguarded
        Row = model(pg.table)
        s = Session(engine)
        c = engine.connect()
        c.execute(insert(core(pg.table)).values(id=50))  # the primary's, pending
        for shadow_work in _SHADOW_WORK:
            try:
                with shadowguard.shadow():
                    shadow_work(s, c, Row)
            except (RuntimeError, sa_exc.SQLAlchemyError):
                pass
        try:
            c.execute(insert(core(pg.table)).values(id=51))
            c.commit()
            expected = [(50,), (51,)]
        except sa_exc.PendingRollbackError:
            # The shadow's part of the primary's transaction could not be undone: the
            # connection was discarded with it, loudly.
            assert fault in ENDS_THE_PRIMARY_TRANSACTION
            c.rollback()
            expected = []
        c.close()
        assert len(s.new) == 0
        s.close()
        assert pg.oracle(f"SELECT id FROM {pg.table} ORDER BY id") == expected
        pg.execute(f"DELETE FROM {pg.table}")
        _pool_works(pg, engine)
        assert _primary_workload(pg, engine) == unguarded


def _session_commit(s: Session, c: Any, Row: Any) -> None:
    s.add(Row(id=10))
    s.commit()
    s.add(Row(id=11))


def _connection_in_primary_transaction(s: Session, c: Any, Row: Any) -> None:
    c.execute(insert(core(Row.__table__.name)).values(id=12))
    c.execute(text("SELECT pg_advisory_lock(77)"))


def _own_connection(s: Session, c: Any, Row: Any) -> None:
    engine: Any = s.get_bind()
    with engine.connect() as own:
        own.execute(insert(core(Row.__table__.name)).values(id=13))
        own.execute(text("SET search_path = pg_catalog"))
        own.commit()


_SHADOW_WORK: list[Callable[[Session, Any, Any], None]] = [
    _session_commit,
    _connection_in_primary_transaction,
    _own_connection,
]
