"""Primary and shadow work interleaved over shared Sessions and connections (Hypothesis).

A worker keeps a Session, a connection in a transaction and an autocommit connection
across requests; primary steps and shadow blocks use them in any order. After every step
PostgreSQL (read through a connection of its own) holds exactly what the primary steps
committed, the kept Session holds exactly the primary's pending objects, and the kept
connections carry no shadow session state or lock. The model knows only primary steps: a
shadow block either works or is refused, and changes nothing the model can see.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from tests._soak import stateful_settings
from tests.integrations._sa_backends import Backend, checked_out, core, model

SINK = "sqlalchemy"
pytestmark = pytest.mark.postgres

LOCK = 4242  # the advisory lock key shadow blocks take


class _RequestFailed(Exception):
    pass


def _session_adds(w: Worker, i: int) -> None:
    w.session.add(w.Row(id=i))


def _session_flushes(w: Worker, i: int) -> None:
    w.session.add(w.Row(id=i))
    w.session.flush()


def _session_commits(w: Worker, i: int) -> None:
    w.session.add(w.Row(id=i))
    w.session.commit()


def _session_queries_and_changes(w: Worker, i: int) -> None:
    row = w.session.scalars(select(w.Row).limit(1)).first()
    if row is not None:
        row.n = i


def _session_rolls_back(w: Worker, i: int) -> None:
    w.session.rollback()


def _connection_inserts_and_locks(w: Worker, i: int) -> None:
    w.conn.execute(insert(w.rows).values(id=i))
    w.conn.execute(text(f"SELECT pg_advisory_lock({LOCK})"))


def _connection_commits(w: Worker, i: int) -> None:
    w.conn.execute(insert(w.rows).values(id=i))
    w.conn.commit()


def _autocommit_connection_sets(w: Worker, i: int) -> None:
    w.autocommit.execute(text("SET search_path = pg_catalog"))
    w.autocommit.execute(text("SELECT set_config('sg.tenant', 'shadow', false)"))


def _own_session(w: Worker, i: int) -> None:
    with Session(w.engine) as s:
        s.add(w.Row(id=i))
        s.commit()


def _raw_connection(w: Worker, i: int) -> None:
    with contextlib.closing(w.engine.raw_connection()) as raw:
        raw.cursor().execute(f"INSERT INTO {w.pg.table} (id) VALUES ({i})")
        raw.commit()


SHADOW_STEPS: dict[str, Callable[[Worker, int], Any]] = {
    "Session adds": _session_adds,
    "Session flushes": _session_flushes,
    "Session commits": _session_commits,
    "Session queries and changes": _session_queries_and_changes,
    "Session rolls back": _session_rolls_back,
    "connection inserts and locks": _connection_inserts_and_locks,
    "connection commits": _connection_commits,
    "autocommit connection sets": _autocommit_connection_sets,
    "a Session of its own": _own_session,
    "a raw connection": _raw_connection,
}


class Worker(RuleBasedStateMachine):
    """One worker's kept Session and connections, and a model of the primary's work."""

    backend: ClassVar[Backend]

    def __init__(self) -> None:
        super().__init__()
        self.pg = self.backend
        self.pg.execute(f"DELETE FROM {self.pg.table}")
        self.Row = model(self.pg.table)
        self.rows = core(self.pg.table)
        self.engine = self.pg.engine(pool_size=4, max_overflow=0)
        self.session = Session(self.engine)
        self.conn = self.engine.connect()
        self.autocommit = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.ids = itertools.count(1)
        self.shadow_ids = itertools.count(100_000)
        # the model: what the primary committed, and what it has pending where
        self.committed: set[int] = set()
        self.session_new: set[int] = set()
        self.session_flushed: set[int] = set()
        self.conn_pending: set[int] = set()

    def teardown(self) -> None:
        self.session.close()
        self.conn.close()
        self.autocommit.close()
        self.engine.dispose()

    # -- primary steps ------------------------------------------------------------------

    @rule()
    def primary_adds(self) -> None:
        i = next(self.ids)
        self.session.add(self.Row(id=i))
        self.session_new.add(i)

    @rule()
    def primary_flushes(self) -> None:
        self.session.flush()
        self.session_flushed |= self.session_new
        self.session_new.clear()

    @rule()
    def primary_commits_the_session(self) -> None:
        self.session.commit()
        self.committed |= self.session_new | self.session_flushed
        self.session_new.clear()
        self.session_flushed.clear()

    @rule()
    def primary_rolls_back_the_session(self) -> None:
        self.session.rollback()
        self.session_new.clear()
        self.session_flushed.clear()

    @rule()
    def primary_queries_the_session(self) -> None:
        self.session.scalar(select(func.count()).select_from(self.Row))
        self.session_flushed |= self.session_new  # autoflush
        self.session_new.clear()

    @rule()
    def primary_inserts_on_the_connection(self) -> None:
        i = next(self.ids)
        self.conn.execute(insert(self.rows).values(id=i))
        self.conn_pending.add(i)

    @rule(commit=st.booleans())
    def primary_ends_the_connection_transaction(self, commit: bool) -> None:
        if commit:
            self.conn.commit()
            self.committed |= self.conn_pending
        else:
            self.conn.rollback()
        self.conn_pending.clear()

    @rule()
    def primary_uses_a_session_of_its_own(self) -> None:
        i = next(self.ids)
        with Session(self.engine) as s:
            s.add(self.Row(id=i))
            s.commit()
        self.committed.add(i)

    # -- shadow blocks --------------------------------------------------------------------

    @rule(
        steps=st.lists(st.sampled_from(sorted(SHADOW_STEPS)), min_size=1, max_size=4),
        fails=st.booleans(),
    )
    def shadow_block(self, steps: list[str], fails: bool) -> None:
        try:
            with shadowguard.shadow():
                for step in steps:
                    # A refusal: the shared object holds the primary's work.
                    with contextlib.suppress(ShadowSideEffectBlocked):
                        SHADOW_STEPS[step](self, next(self.shadow_ids))
                if fails:
                    raise _RequestFailed
        except _RequestFailed:
            pass

    # -- after every step -------------------------------------------------------------------

    @invariant()
    def postgres_holds_what_the_primary_committed(self) -> None:
        stored = {r[0] for r in self.pg.oracle(f"SELECT id FROM {self.pg.table}")}
        assert stored == self.committed

    @invariant()
    def the_kept_session_holds_the_primary_pending_objects(self) -> None:
        assert {o.id for o in self.session.new} == self.session_new
        assert not self.session.deleted

    @invariant()
    def no_shadow_session_state_or_lock_is_left(self) -> None:
        assert self.autocommit.execute(text("SHOW search_path")).scalar() == '"$user", public'
        tenant = self.autocommit.execute(text("SELECT current_setting('sg.tenant', true)"))
        assert tenant.scalar() in (None, "")
        locks = self.pg.oracle(
            f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = {LOCK}"
        )
        assert locks == [(0,)]
        assert checked_out(self.engine) <= 3  # the kept Session and the two connections


@pytest.mark.usefixtures("installed")
def test_primary_and_shadow_interleaved_over_shared_sessions_and_connections(
    pg: Backend,
) -> None:
    Worker.backend = pg
    run_state_machine_as_test(Worker, settings=stateful_settings(30, steps=15))
