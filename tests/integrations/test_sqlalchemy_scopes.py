"""The SQLAlchemy guard at the end of a shadow scope, on real PostgreSQL and SQLite.

A Session reads its own writes until the scope ends; a connection left in a transaction is
rolled back then; a scope inside a primary transaction undoes its own part only, and may
not end that transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Integer, String, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import shadowguard
from shadowguard import ShadowSideEffectBlocked, _config
from tests.integrations._sa_backends import Backend, checked_out, core, model
from tests.integrations._sa_backends import backend as backend  # a fixture

SINK = "sqlalchemy"
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("installed")]


# -- read your own writes --------------------------------------------------------------


def test_session_reads_its_own_writes_until_the_scope_ends(backend: Backend) -> None:
    t = backend.create_table(
        f"{backend.table}_g",
        "id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(20) NOT NULL DEFAULT 'dflt'"
        if backend.name == "sqlite"
        else "id SERIAL PRIMARY KEY, name VARCHAR(20) NOT NULL DEFAULT 'dflt'",
    )

    class Base(DeclarativeBase):
        pass

    class Row(Base):
        __tablename__ = t
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        name: Mapped[str] = mapped_column(String(20), server_default="dflt")

    engine = backend.engine()
    with shadowguard.shadow() as scope:
        with Session(engine) as s:
            first = Row()
            s.add(first)
            s.commit()
            assert first.id == 1  # generated id, reloaded after commit
            assert first.name == "dflt"  # server default, refreshed
            s.add(Row(name="second"))
            s.commit()
            assert [r.name for r in s.scalars(select(Row).order_by(Row.id))] == [
                "dflt",
                "second",
            ]
            s.add(Row(name="rolled back"))
            s.flush()
            s.rollback()
            assert s.scalar(select(func_count(Row))) == 2
            assert backend.count(table=t) == 0
        assert checked_out(engine) == 0  # closing the Session released its connection
    assert scope.counts["db.commit"] == 2
    assert backend.count(table=t) == 0
    with Session(engine) as s:
        s.add(Row())
        s.commit()
    assert backend.count(table=t) == 1


def func_count(entity: Any) -> Any:
    from sqlalchemy import func

    return select(func.count()).select_from(entity).scalar_subquery()


def test_scope_end_rolls_back_a_session_left_open(backend: Backend) -> None:
    engine = backend.engine()
    s = Session(engine)
    with shadowguard.shadow():
        s.add(model(backend.table)(id=1))
        s.commit()
        assert checked_out(engine) == 1
    assert checked_out(engine) == 0
    assert backend.count() == 0
    s.close()


def test_a_session_outliving_the_scope_serves_no_ghost_rows(backend: Backend) -> None:
    Row = model(backend.table)
    engine = backend.engine()
    with Session(engine, expire_on_commit=False) as s:
        with shadowguard.shadow():
            s.add(Row(id=1))
            s.commit()
            assert s.get(Row, 1) is not None
        assert s.get(Row, 1) is None  # primary again: the shadow row never existed
        s.add(Row(id=2))
        s.commit()
    assert backend.count("id = 2") == 1
    assert backend.count("id = 1") == 0


def test_scope_end_rolls_back_a_connection_left_in_a_transaction(backend: Backend) -> None:
    engine = backend.engine()
    with engine.connect() as c:
        with shadowguard.shadow():
            c.execute(insert(core(backend.table)).values(id=1))
        assert not c.in_transaction()
        c.commit()  # primary: nothing of the shadow's is left to commit
    assert backend.count() == 0


@contextlib.contextmanager
def primary_transaction(engine: Engine, begin: str) -> Iterator[Connection]:
    """The primary's connection, in ``engine.begin()`` or committed as you go at the end."""
    if begin == "engine.begin()":
        with engine.begin() as c:
            yield c
    else:
        with engine.connect() as c:
            yield c
            c.commit()


@pytest.mark.parametrize("shadow_work", ["read", "write", "write in a nested transaction"])
@pytest.mark.parametrize("begin", ["commit as you go", "engine.begin()"])
def test_a_scope_inside_a_primary_transaction_keeps_the_primary_writes(
    backend: Backend, shadow_work: str, begin: str
) -> None:
    """A what-if in shadow on the primary's connection undoes its own part only."""
    engine = backend.engine()
    rows = core(backend.table)
    with primary_transaction(engine, begin) as c:
        c.execute(insert(rows).values(id=1))
        with shadowguard.shadow():
            assert c.execute(text(f"SELECT count(*) FROM {backend.table}")).scalar() == 1
            if shadow_work == "write":
                c.execute(insert(rows).values(id=99))
            if shadow_work == "write in a nested transaction":
                with c.begin_nested():
                    c.execute(insert(rows).values(id=98))
        c.execute(insert(rows).values(id=2))
    assert backend.ids() == [1, 2]


@pytest.mark.parametrize("ending", ["commit", "rollback", "close"])
@pytest.mark.parametrize("begin", ["commit as you go", "engine.begin()"])
def test_ending_the_primary_transaction_in_shadow_is_refused(
    backend: Backend, ending: str, begin: str
) -> None:
    """Shadow code may not end the primary's transaction: before, a rollback dropped its
    writes and a commit left its ``engine.begin()`` block without a transaction."""
    engine = backend.engine()
    rows = core(backend.table)
    with primary_transaction(engine, begin) as c:
        c.execute(insert(rows).values(id=1))
        with shadowguard.shadow() as scope:
            c.execute(insert(rows).values(id=99))
            with pytest.raises(ShadowSideEffectBlocked, match="primary began"):
                getattr(c, ending)()
        assert scope.suppressed[-1].detail["operation"] == ending
        c.execute(insert(rows).values(id=2))
    assert backend.ids() == [1, 2]


@pytest.mark.parametrize("ending", ["commit", "rollback"])
def test_a_shadow_session_joined_to_the_primary_connection_ends_only_its_savepoint(
    backend: Backend, ending: str
) -> None:
    """In every join mode, a Session joined in shadow to the primary's transaction gets a
    savepoint of its own: its commit and rollback leave the primary's transaction open."""
    engine = backend.engine()
    rows = core(backend.table)
    Row = model(backend.table)
    modes: list[Any] = [
        "conditional_savepoint",
        "rollback_only",
        "control_fully",
        "create_savepoint",
    ]
    for mode in modes:
        with engine.connect() as c:
            c.execute(insert(rows).values(id=1))
            with shadowguard.shadow(), Session(bind=c, join_transaction_mode=mode) as s:
                s.add(Row(id=99))
                s.flush()
                getattr(s, ending)()
            c.execute(insert(rows).values(id=2))
            c.commit()
        assert backend.ids() == [1, 2], mode
        backend.execute(f"DELETE FROM {backend.table}")


def test_a_primary_session_in_a_scope_is_refused_and_keeps_its_writes(backend: Backend) -> None:
    """A Session holding the primary's flushed writes is refused at the shadow's first use."""
    engine = backend.engine()
    Row = model(backend.table)
    with Session(engine) as s:
        s.add(Row(id=1))
        s.flush()
        with (
            shadowguard.shadow(),
            pytest.raises(ShadowSideEffectBlocked, match="Session of its own"),
        ):
            s.scalar(text(f"SELECT count(*) FROM {backend.table}"))
        s.add(Row(id=2))
        s.commit()
    assert backend.ids() == [1, 2]


def test_process_wide_shadow_mode_without_a_scope(backend: Backend) -> None:
    engine = backend.engine()
    _config.PROCESS.shadow = True
    try:
        assert shadowguard.current_scope() is None
        with Session(engine) as s:
            s.add(model(backend.table)(id=1))
            s.commit()
            assert s.get(model(backend.table), 1) is not None
        assert checked_out(engine) == 0
        with engine.connect() as c:
            c.execute(insert(core(backend.table)).values(id=1))
            c.commit()
    finally:
        _config.PROCESS.shadow = False
    assert backend.count() == 0
