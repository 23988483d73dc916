"""Lock bounds of shadow transactions on asyncio engines (asyncpg, psycopg 3), real PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import shadowguard
from tests.integrations._sa_backends import Backend

SINK = "sqlalchemy"
pytestmark = [pytest.mark.postgres, pytest.mark.asyncio, pytest.mark.usefixtures("installed")]


@pytest.fixture(params=["asyncpg", "psycopg"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_async_shadow_insert_of_a_held_key_fails_fast_and_bounds_do_not_leak(
    pg: Backend, driver: str
) -> None:
    engine = create_async_engine(pg.url.replace("+psycopg", f"+{driver}"), pool_size=1)
    primary = psycopg.connect(pg.dsn)
    primary.execute(f"INSERT INTO {pg.table} (id, name) VALUES (1, 'primary')")
    try:
        with shadowguard.shadow():
            async with AsyncSession(engine) as session:
                await session.execute(text("SELECT 1"))
                assert (await session.execute(text("SHOW lock_timeout"))).scalar_one() == "100ms"
                started = time.monotonic()
                with pytest.raises(DBAPIError, match="lock timeout"):
                    await session.execute(
                        text(f"INSERT INTO {pg.table} (id, name) VALUES (1, 'shadow')")
                    )
                assert time.monotonic() - started < 0.6
        primary.commit()
        async with engine.connect() as c:
            assert (await c.execute(text("SHOW lock_timeout"))).scalar_one() == pg.oracle(
                "SHOW lock_timeout"
            )[0][0]
    finally:
        primary.close()
        await engine.dispose()
    assert pg.oracle(f"SELECT name FROM {pg.table}") == [("primary",)]


async def test_a_forgotten_async_shadow_transaction_ends_with_the_scope(
    pg: Backend, driver: str
) -> None:
    """Not at the pool's check-in: its backend is gone (dropped) by the time the scope ended."""
    engine = create_async_engine(pg.url.replace("+psycopg", f"+{driver}"))
    try:
        with shadowguard.shadow():
            kept = await engine.connect()
            await kept.execute(text(f"INSERT INTO {pg.table} (id) VALUES (1)"))
            pid = (await kept.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        deadline = time.monotonic() + 0.5  # measured: gone within 30 ms
        while time.monotonic() < deadline:
            state = pg.oracle(f"SELECT state FROM pg_stat_activity WHERE pid = {pid}")
            if not state or state[0][0] != "idle in transaction":
                break
            await asyncio.sleep(0.02)
        assert not state or state[0][0] == "idle", state
        assert pg.oracle(f"SELECT count(*) FROM pg_locks WHERE pid = {pid}")[0][0] == 0
        await kept.close()
    finally:
        await engine.dispose()
    assert pg.count() == 0
