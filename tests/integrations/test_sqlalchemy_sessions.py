"""Sessions that outlive a shadow scope, and shadow blocks on the primary's own Session.

A Session kept across requests (a worker's Session, a ``scoped_session`` never removed)
carries nothing of a shadow scope into later primary work: objects the shadow added,
changed or deleted, flushed or not, never reach a later primary commit (issue #12, leak 2).
A shadow block on a Session that holds the primary's work is refused at its first use,
and the primary's state after the block is what it was before (issue #12, change 7).
Every check asks PostgreSQL or SQLite through a connection of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, scoped_session, sessionmaker

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from shadowguard.contract import enter_scope, leave_scope
from tests.integrations._sa_backends import Backend, checked_out, model
from tests.integrations._sa_backends import backend as backend  # a fixture

SINK = "sqlalchemy"
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("installed")]


def _ids(backend: Backend) -> list[tuple[Any, ...]]:
    return backend.oracle(f"SELECT id, name, n FROM {backend.table} ORDER BY id")


# -- what the shadow leaves in a Session that outlives the scope ----------------------


def _add(s: Any, Row: Any) -> None:
    s.add(Row(id=10, name="shadow"))


def _add_all_and_merge(s: Any, Row: Any) -> None:
    s.add_all([Row(id=10, name="shadow"), Row(id=11, name="shadow")])
    s.merge(Row(id=12, name="shadow"))


def _change(s: Any, Row: Any) -> None:
    s.get(Row, 1).name = "shadow"


def _change_key(s: Any, Row: Any) -> None:
    s.get(Row, 1).id = 10


def _delete(s: Any, Row: Any) -> None:
    s.delete(s.get(Row, 1))


def _flush_then_add(s: Any, Row: Any) -> None:
    s.add(Row(id=10, name="shadow"))
    s.flush()
    s.add(Row(id=11, name="shadow"))
    s.get(Row, 1).n = 99


SHADOW_WORK: dict[str, Callable[[Any, Any], None]] = {
    "add": _add,
    "add_all and merge": _add_all_and_merge,
    "change an attribute": _change,
    "change the primary key": _change_key,
    "delete": _delete,
    "flush, then add and change": _flush_then_add,
}


@pytest.mark.parametrize("work", sorted(SHADOW_WORK))
@pytest.mark.parametrize("ends", ["normally", "by an exception"])
@pytest.mark.parametrize("kept", ["Session", "scoped_session"])
def test_nothing_of_the_shadow_reaches_a_later_primary_commit(
    backend: Backend, work: str, ends: str, kept: str
) -> None:
    """Before the fix the shadow's unflushed objects were stored by the primary's commit."""
    backend.execute(f"INSERT INTO {backend.table} (id, name) VALUES (1, 'primary')")
    Row = model(backend.table)
    engine = backend.engine()
    s: Any = scoped_session(sessionmaker(engine)) if kept == "scoped_session" else Session(engine)
    s.get(Row, 1)  # the primary loaded it earlier
    s.commit()
    failing = pytest.raises(RuntimeError) if ends != "normally" else contextlib.nullcontext()
    with failing, shadowguard.shadow():
        SHADOW_WORK[work](s, Row)
        if ends != "normally":
            raise RuntimeError("the shadow request failed")
    assert [len(s.new), len(s.dirty), len(s.deleted)] == [0, 0, 0]
    assert s.get(Row, 1).name == "primary"
    s.add(Row(id=2, name="primary"))
    s.commit()
    assert _ids(backend) == [(1, "primary", 0), (2, "primary", 0)]
    s.close()
    assert checked_out(engine) == 0


def test_a_later_scope_takes_the_session_again(backend: Backend) -> None:
    Row = model(backend.table)
    engine = backend.engine()
    s = Session(engine)
    for i in (10, 11):
        with shadowguard.shadow():
            s.add(Row(id=i))
            s.commit()
            assert s.get(Row, i) is not None  # reads its own writes within the scope
    s.add(Row(id=1))
    s.commit()
    assert [r[0] for r in _ids(backend)] == [1]
    s.close()


def test_shadow_changes_to_a_primary_object_are_undone(backend: Backend) -> None:
    """The primary keeps an object (``expire_on_commit=False``); the shadow changes it."""
    backend.execute(f"INSERT INTO {backend.table} (id, name) VALUES (1, 'primary')")
    Row = model(backend.table)
    s = Session(backend.engine(), expire_on_commit=False)
    row: Any = s.get(Row, 1)
    s.commit()
    with shadowguard.shadow():
        row.name = "shadow"
        row.n = 5
    assert row.name == "primary"
    row.n = 1  # the primary's own change
    s.commit()
    assert _ids(backend) == [(1, "primary", 1)]
    s.close()


def test_work_in_a_scope_that_has_ended_is_refused(backend: Backend) -> None:
    """A task that inherited a shadow scope and outlived it: nothing would undo its work."""
    Row = model(backend.table)
    s = Session(backend.engine())
    with shadowguard.shadow() as scope:
        pass
    token = enter_scope(scope)
    try:
        with pytest.raises(ShadowSideEffectBlocked, match="after that scope ended"):
            s.add(Row(id=10))
    finally:
        leave_scope(token)
    assert not s.new
    s.add(Row(id=1))
    s.commit()
    assert [r[0] for r in _ids(backend)] == [1]
    s.close()


# -- a shadow block on the primary's own Session ---------------------------------------


def _primary_work(s: Session, Row: Any, state: str) -> None:
    if state == "unflushed object":
        s.add(Row(id=2, name="primary"))
    elif state == "flushed write":
        s.add(Row(id=2, name="primary"))
        s.flush()
    elif state == "changed object":
        s.get(Row, 1).name = "changed"  # type: ignore[union-attr]
    elif state == "deleted object":
        s.delete(s.get(Row, 1))
    elif state == "read in a transaction":
        s.get(Row, 1)
    elif state == "explicit begin":
        s.begin()


SHADOW_FIRST_USE: dict[str, Callable[[Session, Any], object]] = {
    "query (autoflush)": lambda s, Row: s.scalar(select(Row).where(Row.id == 5)),
    "text query": lambda s, Row: s.execute(text("SELECT 1")),
    "add": lambda s, Row: s.add(Row(id=99)),
    "commit": lambda s, Row: s.commit(),
    "rollback": lambda s, Row: s.rollback(),
    "flush": lambda s, Row: s.flush(),
    "expire_all": lambda s, Row: s.expire_all(),
    "expunge_all": lambda s, Row: s.expunge_all(),
    "begin_nested": lambda s, Row: s.begin_nested(),
    "close": lambda s, Row: s.close(),
    "refresh": lambda s, Row: s.refresh(s.get(Row, 1) or Row(id=1)),
}


@pytest.mark.parametrize("use", sorted(SHADOW_FIRST_USE))
@pytest.mark.parametrize(
    "state",
    [
        "unflushed object",
        "flushed write",
        "changed object",
        "deleted object",
        "read in a transaction",
        "explicit begin",
    ],
)
def test_a_shadow_block_on_the_primary_session_is_refused(
    backend: Backend, state: str, use: str
) -> None:
    """Before the fix a shadow commit() dropped flushed primary writes, and a shadow query
    autoflushed the primary's objects, which the scope's end then rolled back."""
    backend.execute(f"INSERT INTO {backend.table} (id, name) VALUES (1, 'primary')")
    Row = model(backend.table)
    with Session(backend.engine()) as s:
        _primary_work(s, Row, state)
        before = (set(s.new), set(s.dirty), set(s.deleted), s.in_transaction())
        if use == "flush" and not any(before[:3]):
            with shadowguard.shadow():
                s.flush()  # nothing to flush: nothing happens
        else:
            with (
                shadowguard.shadow() as scope,
                pytest.raises(ShadowSideEffectBlocked, match="Session of its own"),
            ):
                SHADOW_FIRST_USE[use](s, Row)
            assert scope.suppressed[-1].blocked
        assert (set(s.new), set(s.dirty), set(s.deleted), s.in_transaction()) == before
        s.commit()
    expected = {
        "unflushed object": [(1, "primary", 0), (2, "primary", 0)],
        "flushed write": [(1, "primary", 0), (2, "primary", 0)],
        "changed object": [(1, "changed", 0)],
        "deleted object": [],
    }.get(state, [(1, "primary", 0)])
    assert _ids(backend) == expected


def test_a_shadow_session_of_its_own_inside_a_primary_request(pg: Backend) -> None:
    """The way out the refusal names: a what-if in a Session of its own (on SQLite it
    would wait for the primary's write lock)."""
    backend = pg
    Row = model(backend.table)
    engine = backend.engine()
    with Session(engine) as primary:
        primary.add(Row(id=1, name="primary"))
        primary.flush()
        with shadowguard.shadow() as scope, Session(engine) as what_if:
            what_if.add(Row(id=2, name="what-if"))
            what_if.commit()
            assert what_if.get(Row, 2) is not None
        assert scope.counts["db.commit"] == 1
        primary.commit()
    assert _ids(backend) == [(1, "primary", 0)]


def test_a_session_on_an_autocommit_engine(backend: Backend) -> None:
    """Reads run; a write is refused as on any autocommit connection (before the fix: an
    InternalError, "SAVEPOINT can only be used in transaction blocks")."""
    backend.execute(f"INSERT INTO {backend.table} (id) VALUES (1)")
    Row = model(backend.table)
    engine = backend.engine(isolation_level="AUTOCOMMIT")
    with shadowguard.shadow(), Session(engine) as s:
        assert s.get(Row, 1) is not None
        s.add(Row(id=2))
        with pytest.raises(ShadowSideEffectBlocked, match="AUTOCOMMIT"):
            s.commit()
    assert [r[0] for r in _ids(backend)] == [1]
    assert checked_out(engine) == 0
