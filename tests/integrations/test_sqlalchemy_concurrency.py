"""Shadow and primary work interleaved at random, in threads and asyncio tasks.

1000 units of work each way; the oracle then finds no shadow row and every primary row.
"""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

import shadowguard
from tests.integrations._sa_backends import Backend, checked_out, core, model

SINK = "sqlalchemy"
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("installed")]

UNITS = 1000


def _plan(seed: int) -> list[tuple[int, bool]]:
    rng = random.Random(seed)
    return [(i, rng.random() < 0.5) for i in range(1, UNITS + 1)]


def _check(pg: Backend, plan: list[tuple[int, bool]]) -> None:
    shadow_ids = [i for i, shadow in plan if shadow]
    primary_ids = [i for i, shadow in plan if not shadow]
    assert shadow_ids
    assert primary_ids
    assert pg.count(f"id IN ({', '.join(map(str, shadow_ids))})") == 0
    assert pg.count(f"id IN ({', '.join(map(str, primary_ids))})") == len(primary_ids)
    assert pg.count() == len(primary_ids)


def test_threads_interleaving_shadow_and_primary(pg: Backend) -> None:
    engine = pg.engine(pool_size=8, max_overflow=0)
    Row = model(pg.table)
    plan = _plan(3)

    def unit(i: int, shadow: bool) -> None:
        def work() -> None:
            if i % 2:
                with Session(engine) as s:
                    s.add(Row(id=i))
                    s.commit()
                    assert s.get(Row, i) is not None
            else:
                with engine.begin() as c:
                    c.execute(insert(core(pg.table)).values(id=i))

        if shadow:
            with shadowguard.shadow("concurrency"):
                work()
        else:
            work()

    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(unit, i, shadow) for i, shadow in plan]:
            future.result()
    assert checked_out(engine) == 0
    _check(pg, plan)


@pytest.mark.asyncio
async def test_asyncio_tasks_interleaving_shadow_and_primary(pg: Backend) -> None:
    engine = create_async_engine(
        pg.url.replace("+psycopg", "+asyncpg"), pool_size=10, max_overflow=0
    )
    Row = model(pg.table)
    plan = _plan(5)
    queue: asyncio.Queue[tuple[int, bool]] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)

    async def work(i: int) -> None:
        if i % 2:
            async with AsyncSession(engine) as s:
                s.add(Row(id=i))
                await s.commit()
                assert (await s.get(Row, i)) is not None
        else:
            async with engine.begin() as c:
                await c.execute(insert(core(pg.table)).values(id=i))

    async def task() -> None:
        while not queue.empty():
            i, shadow = queue.get_nowait()
            if shadow:
                async with shadowguard.shadow("concurrency"):
                    await work(i)
            else:
                await work(i)

    try:
        await asyncio.gather(*(task() for _ in range(50)))
        assert checked_out(engine) == 0
    finally:
        await engine.dispose()
    _check(pg, plan)
