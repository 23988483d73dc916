"""Lock bounds of shadow transactions on asyncio engines (asyncpg, psycopg 3), real PostgreSQL."""

from __future__ import annotations

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
