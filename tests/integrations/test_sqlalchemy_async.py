"""The SQLAlchemy guard on asyncio engines: asyncpg and psycopg 3, on real PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from shadowguard.integrations import sqlalchemy as sg
from tests.integrations._sa_backends import Backend, advisory_locks, checked_out, core, model
from tests.integrations._support import installing

SINK = "sqlalchemy"
pytestmark = [pytest.mark.postgres, pytest.mark.asyncio]


@pytest.fixture(params=["asyncpg", "psycopg"])
def driver(request: pytest.FixtureRequest) -> str:
    """Each asyncio driver in turn."""
    return str(request.param)


@pytest_asyncio.fixture
async def engine(pg: Backend, driver: str) -> AsyncIterator[AsyncEngine]:
    """An asyncio engine on ``pg`` through each driver in turn."""
    async with async_engine(pg, driver) as made:
        yield made


@contextlib.asynccontextmanager
async def async_engine(pg: Backend, driver: str, **kwargs: Any) -> AsyncIterator[AsyncEngine]:
    """An asyncio engine on ``pg`` through ``driver``, disposed when the block ends."""
    engine = create_async_engine(pg.url.replace("+psycopg", f"+{driver}"), **kwargs)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("installed")
async def test_async_session_commit(pg: Backend, engine: AsyncEngine) -> None:
    Row = model(pg.table)
    async with shadowguard.shadow() as scope:
        async with AsyncSession(engine) as s:
            s.add(Row(id=1))
            await s.commit()
            row = await s.get(Row, 1)  # read your own writes
            assert row is not None
            assert row.name == "dflt"
            s.add(Row(id=2))
            await s.commit()
            assert (await s.scalar(text(f"SELECT count(*) FROM {pg.table}"))) == 2
        assert checked_out(engine) == 0
        assert pg.count() == 0
    assert scope.counts["db.commit"] == 2
    assert pg.count() == 0
    async with AsyncSession(engine) as s:
        s.add(Row(id=1))
        await s.commit()
    assert pg.count() == 1


@pytest.mark.usefixtures("installed")
async def test_async_connection_commit_and_begin(pg: Backend, engine: AsyncEngine) -> None:
    async with shadowguard.shadow() as scope:
        async with engine.connect() as c:
            await c.execute(insert(core(pg.table)).values(id=1))
            await c.commit()
        async with engine.begin() as c:
            await c.execute(insert(core(pg.table)).values(id=2))
    assert scope.counts["db.commit"] == 2
    assert pg.count() == 0
    async with engine.begin() as c:
        await c.execute(insert(core(pg.table)).values(id=1))
    assert pg.count() == 1


@pytest.mark.usefixtures("installed")
async def test_async_session_left_open_is_dropped_at_scope_end(
    pg: Backend, engine: AsyncEngine
) -> None:
    """No IO is possible when the scope ends outside a greenlet: the connection is dropped."""
    s = AsyncSession(engine)
    async with shadowguard.shadow():
        s.add(model(pg.table)(id=1))
        await s.commit()
    assert pg.count() == 0
    await s.close()
    assert checked_out(engine) == 0
    async with engine.connect() as c:  # the pool still serves working connections
        assert (await c.scalar(select(text("1")))) == 1


@pytest.mark.usefixtures("installed")
async def test_async_refusals_and_validation(pg: Backend, driver: str) -> None:
    pg.execute(f"INSERT INTO {pg.table} (id) VALUES (7)")
    async with (
        async_engine(pg, driver, isolation_level="AUTOCOMMIT") as engine,
        async_engine(pg, driver) as plain,
    ):
        async with shadowguard.shadow() as scope:
            async with engine.connect() as c:
                with pytest.raises(ShadowSideEffectBlocked, match="AUTOCOMMIT"):
                    await c.execute(insert(core(pg.table)).values(id=1))
            async with plain.connect() as c:
                with pytest.raises(ShadowSideEffectBlocked):
                    await c.execute(text(f"DROP TABLE {pg.table}"))
            async with AsyncSession(plain) as s:
                s.add(model(pg.table)(id=7))
                with pytest.raises(sa_exc.IntegrityError):
                    await s.commit()
        # the two refusals are recorded too, as blocked, each with the error it raised
        blocked = [s for s in scope.suppressed if s.blocked]
        suppressed = [s for s in scope.suppressed if not s.blocked]
        assert [type(s.error) for s in blocked] == [ShadowSideEffectBlocked] * 2
        assert scope.counts["db.commit"] == len(blocked) + 1
        assert len(suppressed) == 1
        assert isinstance(suppressed[0].error, sa_exc.IntegrityError)
        assert pg.count() == 1


@pytest.mark.usefixtures("installed")
async def test_asyncpg_pooled_connection_keeps_no_session_state(pg: Backend) -> None:
    async with async_engine(pg, "asyncpg", pool_size=1, max_overflow=0) as engine:
        async with shadowguard.shadow(), engine.connect() as c:
            c = await c.execution_options(isolation_level="AUTOCOMMIT")
            pid = await c.scalar(text("SELECT pg_backend_pid()"))
            await c.execute(text("SET statement_timeout = 4321"))
            await c.execute(text("SELECT pg_advisory_lock(4243)"))
            await c.execute(text("CREATE TEMP TABLE sg_tmp_async (i INTEGER)"))
        async with engine.connect() as c:
            assert (await c.scalar(text("SELECT pg_backend_pid()"))) == pid
            assert (await c.scalar(text("SHOW statement_timeout"))) == "0"
            assert (await c.scalar(text("SELECT to_regclass('pg_temp.sg_tmp_async')"))) is None
            # the prepared-statement cache still works after the clean-up
            for _ in range(3):
                assert (await c.scalar(select(text("1")))) == 1
        assert advisory_locks(pg, pid) == 0


async def test_async_objects_created_before_install_are_guarded(pg: Backend) -> None:
    async with async_engine(pg, "asyncpg") as engine:
        session = AsyncSession(engine)
        with installing(sg):
            async with shadowguard.shadow():
                session.add(model(pg.table)(id=1))
                await session.commit()
                async with engine.begin() as c:
                    await c.execute(insert(core(pg.table)).values(id=2))
            await session.close()
            assert pg.count() == 0


@pytest.mark.usefixtures("installed")
async def test_a_scope_inside_a_primary_transaction_is_refused(
    pg: Backend, engine: AsyncEngine
) -> None:
    """No IO at the scope's end: rolling back to a savepoint there is impossible, so refuse."""
    async with engine.connect() as c:
        await c.execute(insert(core(pg.table)).values(id=1))
        with pytest.raises(ShadowSideEffectBlocked, match="asyncio"):
            async with shadowguard.shadow():
                await c.execute(text("SELECT 1"))
        await c.execute(insert(core(pg.table)).values(id=2))
        await c.commit()
    assert pg.count() == 2


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("flushed", [False, True])
async def test_an_async_session_outliving_the_scope_keeps_nothing_of_it(
    pg: Backend, driver: str, flushed: bool
) -> None:
    """The scope ends outside the greenlet: the Session is still put back, without IO."""
    Row = model(pg.table)
    async with async_engine(pg, driver) as engine:
        s = AsyncSession(engine, expire_on_commit=False)
        async with shadowguard.shadow():
            s.add(Row(id=10))
            if flushed:
                await s.flush()
            s.add(Row(id=11))
        assert not s.new
        s.add(Row(id=1))
        await s.commit()
        await s.close()
        assert checked_out(engine) == 0
    assert pg.oracle(f"SELECT id FROM {pg.table}") == [(1,)]


@pytest.mark.usefixtures("installed")
async def test_an_async_shadow_block_on_the_primary_session_is_refused(
    pg: Backend, driver: str
) -> None:
    Row = model(pg.table)
    async with async_engine(pg, driver) as engine, AsyncSession(engine) as s:
        s.add(Row(id=1))
        with pytest.raises(ShadowSideEffectBlocked, match="Session of its own"):
            async with shadowguard.shadow():
                await s.scalar(select(Row).where(Row.id == 5))  # would autoflush Row 1
        await s.commit()
    assert pg.oracle(f"SELECT id FROM {pg.table}") == [(1,)]
