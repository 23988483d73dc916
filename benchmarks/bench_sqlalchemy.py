"""Primary-path cost of the SQLAlchemy guard: ORM add+commit and Core execute+commit.

Guarded and unguarded run in the same process, interleaved sample by sample: the guard is
uninstalled before each baseline sample and installed before each guarded one, outside
the timed loop (a switch costs far more than one call and would swamp short samples).
Same engine, same tables, same data on both sides. After each switch the workload runs
untimed a few dozen times: a switch re-patches SQLAlchemy's classes, which makes CPython
drop the specializations of every call site that touches them, and a service pays that
once, at ``install()``, not on every request.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Harness
from shadowguard.integrations import sqlalchemy as sg

TARGET_RATIO = 1.03  # issue #11: SQLAlchemy commit ratios stay <= 1.03
PG_URL = os.environ.get(
    "SHADOWGUARD_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _workloads(engine: Any, prefix: str) -> list[tuple[str, Callable[[], object]]]:
    from sqlalchemy import Integer, String, insert
    from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = f"bench_{uuid.uuid4().hex[:8]}"
        id = mapped_column(Integer, primary_key=True)
        name = mapped_column(String(40))

    Base.metadata.create_all(engine)
    ids = itertools.count(1)
    table: Any = Item.__table__

    def orm_add_commit() -> None:
        with Session(engine) as s:
            s.add(Item(id=next(ids), name="x"))
            s.commit()

    def core_execute_commit() -> None:
        with engine.connect() as c:
            c.execute(insert(table).values(id=next(ids), name="x"))
            c.commit()

    return [
        (f"{prefix}: ORM add + commit, primary", orm_add_commit),
        (f"{prefix}: Core execute + commit, primary", core_execute_commit),
    ]


#: Untimed runs after each install/uninstall switch (see the module docstring).
WARM_UP = 30


def _switching(switch: Callable[[], object], fn: Callable[[], object]) -> Callable[[], None]:
    def before() -> None:
        switch()  # install() and uninstall() are both idempotent
        for _ in range(WARM_UP):
            fn()

    return before


def _compare(h: Harness, workloads: list[tuple[str, Callable[[], object]]]) -> None:
    for name, fn in workloads:
        h.compare(
            name,
            fn,
            fn,
            target_ratio=TARGET_RATIO,
            before_baseline=_switching(sg.uninstall, fn),
            before_guarded=_switching(sg.install, fn),
        )


def run(h: Harness) -> None:
    if not h.imports(
        "sqlalchemy", missing="sqlalchemy is not installed: pip install 'shadowguard[sqlalchemy]'"
    ):
        return
    from sqlalchemy import create_engine

    try:
        sqlite = create_engine("sqlite://")
        _compare(h, _workloads(sqlite, "SQLite (memory)"))
        sqlite.dispose()
        _postgres(h)
    finally:
        sg.uninstall()


def _postgres(h: Harness) -> None:
    from sqlalchemy import create_engine, text

    name = f"sg_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        h.note(f"PostgreSQL is not available, skipped its comparisons ({type(exc).__name__})")
        return
    try:
        engine = create_engine(PG_URL.rsplit("/", 1)[0] + f"/{name}")
        workloads = _workloads(engine, "PostgreSQL (psycopg)")
        _compare(h, workloads)
        _experiment_off(h, workloads[0][1])
        engine.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _experiment_off(h: Harness, control: Callable[[], object]) -> None:
    """An experiment that does not run its candidate costs the control almost nothing."""
    from shadowguard import Experiment

    sg.uninstall()
    experiment = Experiment("bench", sample=0)

    def never() -> None:
        raise AssertionError("the candidate of a sample=0 experiment ran")

    h.compare(
        "Experiment sample=0: PostgreSQL ORM add + commit as control",
        control,
        lambda: experiment.run(control, never),
        target_ratio=TARGET_RATIO,
    )
