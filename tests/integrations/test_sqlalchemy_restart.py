"""A PostgreSQL restart in the middle of mixed primary and shadow traffic (issue #12, faults).

Primary and shadow threads commit through one engine (ORM Sessions and Core connections)
while the server is stopped at once (``pg_ctl -m immediate``: connections cut mid-statement)
and started again. Afterwards: nothing from the shadow is stored; every primary commit that
reported success is stored, and nothing the primary did not attempt; the primary met only
the database's own disconnect errors; the same engine serves primary and shadow work again;
no connection is left inside a transaction.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, Integer, String, create_engine, insert, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import shadowguard
from tests.peers.postgres_cluster import Cluster

SINK = "sqlalchemy"
pytestmark = pytest.mark.postgres

SHADOW_IDS = 1_000_000


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    side: Mapped[str] = mapped_column(String(10))


def _orm(engine: Engine, i: int, side: str) -> None:
    with Session(engine) as session:
        session.add(Order(id=i, side=side))
        session.commit()


def _core(engine: Engine, i: int, side: str) -> None:
    with engine.connect() as conn:
        conn.execute(insert(Order).values(id=i, side=side))
        conn.commit()


class Traffic:
    """Workers committing until stopped; what each attempt reported."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.primary_ok: set[int] = set()
        self.primary_attempted: set[int] = set()
        self.primary_errors: list[BaseException] = []
        self.shadow_attempts = 0
        self.primary_ids = itertools.count(1)
        self.shadow_ids = itertools.count(SHADOW_IDS)

    def primary(self, write: Callable[[Engine, int, str], None]) -> None:
        while not self.stop.is_set():
            i = next(self.primary_ids)
            with self.lock:
                self.primary_attempted.add(i)
            try:
                write(self.engine, i, "primary")
            except Exception as exc:  # what an unguarded service meets in a restart
                with self.lock:
                    self.primary_errors.append(exc)
                time.sleep(0.01)
            else:
                with self.lock:
                    self.primary_ok.add(i)

    def shadow(self, write: Callable[[Engine, int, str], None]) -> None:
        while not self.stop.is_set():
            try:
                with shadowguard.shadow():
                    write(self.engine, next(self.shadow_ids), "shadow")
            except Exception:  # fails closed: an error is fine, a stored row is not
                time.sleep(0.01)
            with self.lock:
                self.shadow_attempts += 1


def _stored(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(row.id, row.side) for row in conn.execute(select(Order.id, Order.side))]


def _is_disconnect(exc: BaseException) -> bool:
    """The database's own errors for a cut connection, as SQLAlchemy reports them."""
    if isinstance(exc, sa_exc.DBAPIError):
        return True  # OperationalError and friends: server gone, connection refused
    return isinstance(exc, sa_exc.PendingRollbackError | sa_exc.ResourceClosedError)


@pytest.mark.usefixtures("installed")
def test_postgres_restart_in_mixed_traffic(own_postgres: Cluster) -> None:
    engine = create_engine(own_postgres.url, pool_size=6, max_overflow=0)
    Base.metadata.create_all(engine)
    traffic = Traffic(engine)
    workers: list[threading.Thread] = []
    for write in (_orm, _core):
        workers.append(threading.Thread(target=traffic.primary, args=(write,)))
        workers.append(threading.Thread(target=traffic.shadow, args=(write,)))
    try:
        for worker in workers:
            worker.start()
        time.sleep(0.7)
        own_postgres.restart()
        time.sleep(1.5)
    finally:
        traffic.stop.set()
        for worker in workers:
            worker.join(timeout=60)
    assert not any(worker.is_alive() for worker in workers)
    assert traffic.shadow_attempts > 10
    assert len(traffic.primary_ok) > 10

    # The same engine, after the restart: the primary stores, the shadow does not.
    last = next(traffic.primary_ids)
    _orm(engine, last, "primary")
    with shadowguard.shadow() as scope:
        _orm(engine, next(traffic.shadow_ids), "shadow")
    assert scope.counts["db.commit"] == 1

    stored = _stored(engine)
    assert [row for row in stored if row[0] >= SHADOW_IDS or row[1] != "primary"] == []
    ids = {row[0] for row in stored}
    assert traffic.primary_ok | {last} <= ids
    assert ids <= traffic.primary_attempted | {last}
    unexpected = [exc for exc in traffic.primary_errors if not _is_disconnect(exc)]
    assert unexpected == []
    assert not any(
        isinstance(exc, shadowguard.ShadowSideEffectBlocked) for exc in traffic.primary_errors
    )
    with engine.connect() as conn:
        in_transaction = conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' "
                "AND pid <> pg_backend_pid()"
            )
        )
    assert in_transaction == 0
    engine.dispose()
