"""An experiment whose candidate writes, on PostgreSQL: only the control's rows are stored.

The control inserts an order and returns it; the candidate, a rewrite, inserts it with one
column computed differently and runs one extra, slower query. Both use the same engine, and
in the second test the same Session. The oracle is a separate psycopg connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from shadowguard import Experiment, Result
from tests.integrations._sa_backends import Backend

SINK = "sqlalchemy"
pytestmark = [pytest.mark.usefixtures("installed")]
RUNS = 1000


@pytest.fixture
def orders(pg: Backend) -> Iterator[tuple[Backend, Engine]]:
    pg.table = pg.create_table(
        f"{pg.table}_orders", "id INTEGER PRIMARY KEY, item TEXT NOT NULL, total INTEGER NOT NULL"
    )
    engine = pg.engine(pool_size=2, max_overflow=0)
    yield pg, engine
    engine.dispose()


def insert(session: Session, table: str, order_id: int, item: str, total: int) -> dict[str, Any]:
    """Insert an order, read it back, commit: the Session holds no work afterwards."""
    session.execute(
        text(f"INSERT INTO {table} (id, item, total) VALUES (:id, :item, :total)"),
        {"id": order_id, "item": item, "total": total},
    )
    query = text(f"SELECT id, item, total FROM {table} WHERE id = :id")
    row = dict(session.execute(query, {"id": order_id}).mappings().one())
    session.commit()
    return row


def test_a_thousand_runs_store_exactly_the_controls_rows(orders: tuple[Backend, Engine]) -> None:
    pg, engine = orders
    published: list[Result] = []

    def control(order_id: int, item: str) -> dict[str, Any]:
        with Session(engine) as session:
            return insert(session, pg.table, order_id, item, 10 * order_id)

    def candidate(order_id: int, item: str) -> dict[str, Any]:
        with Session(engine) as session:
            session.execute(text("SELECT pg_sleep(0.0005)"))  # the slower query of the rewrite
            total = 10 * order_id + (1 if order_id % 10 == 0 else 0)  # differs on a tenth
            return insert(session, pg.table, order_id, item, total)

    # The candidate first: run after the control it would meet the control's row (a duplicate key).
    experiment = Experiment("orders", order="candidate-first", publish=published.append)
    returned = [experiment.run(control, candidate, i, f"item-{i}") for i in range(1, RUNS + 1)]

    assert returned == [{"id": i, "item": f"item-{i}", "total": 10 * i} for i in range(1, RUNS + 1)]
    stored = pg.oracle(f"SELECT id, item, total FROM {pg.table} ORDER BY id")
    assert stored == [(i, f"item-{i}", 10 * i) for i in range(1, RUNS + 1)]
    mismatched = [r for r in published if not r.matched]
    assert len(published) == RUNS
    assert [r.control.value["id"] for r in mismatched] == list(range(10, RUNS + 1, 10))
    assert {(d.path, d.candidate - d.control) for r in mismatched for d in r.diffs} == {
        ("total", 1)
    }
    assert all(r.candidate.exception is None for r in published)
    assert all([s.kind for s in r.candidate.suppressed] == ["db.commit"] for r in published), (
        "each candidate's commit was validated and rolled back"
    )
    slower = sum(r.candidate.duration > r.control.duration for r in published)
    assert slower > RUNS / 2


def test_the_candidate_may_use_the_controls_session(orders: tuple[Backend, Engine]) -> None:
    """After the control's commit the Session holds no primary work: the candidate may use it."""
    pg, engine = orders
    published: list[Result] = []
    experiment = Experiment("same-session", publish=published.append)
    with Session(engine) as session:
        for i in range(1, 51):
            result = experiment.run(
                lambda i=i: insert(session, pg.table, i, "a", i),
                lambda i=i: insert(session, pg.table, 1000 + i, "a", i),
            )
            assert result == {"id": i, "item": "a", "total": i}
        session.execute(text(f"UPDATE {pg.table} SET item = 'b' WHERE id = 1"))
        session.commit()  # the primary's Session still works as before
    assert pg.oracle(f"SELECT count(*), min(id), max(id) FROM {pg.table}") == [(50, 1, 50)]
    assert pg.oracle(f"SELECT item FROM {pg.table} WHERE id = 1") == [("b",)]
    assert [d.path for d in published[0].diffs] == ["id"]


def test_a_candidate_on_a_session_holding_primary_work_is_refused_not_stored(
    orders: tuple[Backend, Engine],
) -> None:
    """Pending primary work in the Session: the candidate fails closed, the primary commits."""
    pg, engine = orders
    published: list[Result] = []
    with Session(engine) as session:
        session.execute(text(f"INSERT INTO {pg.table} VALUES (1, 'primary', 1)"))

        def candidate() -> None:
            session.execute(text(f"INSERT INTO {pg.table} VALUES (2, 'shadow', 2)"))
            session.commit()

        Experiment("refused", publish=published.append).run(lambda: None, candidate)
        session.commit()
    assert pg.oracle(f"SELECT id, item FROM {pg.table}") == [(1, "primary")]
    assert type(published[0].candidate.exception).__name__ == "ShadowSideEffectBlocked"
