"""A shadow request's record is shadowguard's own bookkeeping: written with every guard on.

The application writes to PostgreSQL and to a SQLite file through guarded SQLAlchemy
engines in a process that is shadow as a whole (``SHADOW_MODE=true``): every write of the
application is suppressed, the duplicate key is validated by PostgreSQL, and the capture
records, written to a SQLite file of their own, are all there.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

from shadowguard import _config, integrations
from shadowguard.middleware.asgi import ShadowGuardMiddleware
from tests.capture._support import records
from tests.integrations._support import installing

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_table(postgres_url: str) -> Iterator[tuple[sa.Engine, str]]:
    engine = sa.create_engine(postgres_url)
    name = f"cap_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (ref text PRIMARY KEY)"))
        conn.execute(sa.text(f"INSERT INTO {name} VALUES ('taken')"))
    yield engine, name
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {name}"))
    engine.dispose()


def order_model(table: str) -> Any:
    class Base(DeclarativeBase):
        pass

    return type(
        "Order", (Base,), {"__tablename__": table, "ref": mapped_column(sa.Text, primary_key=True)}
    )


def build(pg: sa.Engine, table: str, app_db: sa.Engine, url: str) -> FastAPI:
    app = FastAPI()
    order_class = order_model(table)

    @app.post("/orders/{ref}")
    def order(ref: str) -> dict[str, Any]:  # a sync endpoint: Starlette's thread pool
        with app_db.begin() as conn:
            conn.execute(sa.text("INSERT INTO orders VALUES (:ref)"), {"ref": ref})
        with Session(pg) as session:
            session.add(order_class(ref=ref))
            try:  # the flush inside commit() meets the duplicate key, as on the primary
                session.commit()
            except sa.exc.IntegrityError:
                return {"ref": ref, "stored": False}
        return {"ref": ref, "stored": True}

    app.add_middleware(ShadowGuardMiddleware, capture=url)  # type: ignore[arg-type]
    return app


@pytest.mark.asyncio
async def test_shadow_records_are_written_while_the_guards_suppress_everything(
    tmp_path: Path, pg_table: tuple[sa.Engine, str]
) -> None:
    pg, table = pg_table
    app_db = sa.create_engine(f"sqlite:///{tmp_path}/app.db")
    with app_db.begin() as conn:
        conn.execute(sa.text("CREATE TABLE orders (ref text)"))
    url = f"sqlite://{tmp_path}/capture.db"
    with installing(integrations.load("sqlalchemy")):
        _config.configure(mode="shadow")  # the whole process is shadow
        try:
            transport = httpx.ASGITransport(app=build(pg, table, app_db, url))
            async with httpx.AsyncClient(transport=transport, base_url="http://o") as client:
                for ref in ("new", "taken"):
                    response = await client.post(f"/orders/{ref}", headers={"x-request-id": ref})
                    assert response.status_code == 200
            found = {r["request_id"]: r for r in records(url)}
        finally:
            _config.reset()
    assert set(found) == {"new", "taken"}
    new, taken = found["new"], found["taken"]
    assert (new["label"], new["body"]) == ("shadow", {"ref": "new", "stored": True})
    assert new["suppressions"] == {"db.commit": 2}
    assert new["validation_errors"] == []
    assert taken["body"] == {"ref": "taken", "stored": False}
    (error,) = taken["validation_errors"]
    assert error.startswith("IntegrityError: duplicate key value violates unique constraint")
    # Nothing of the application's persisted; the records did.
    with pg.connect() as conn:
        assert conn.execute(sa.text(f"SELECT ref FROM {table}")).scalars().all() == ["taken"]
    app_file = sqlite3.connect(tmp_path / "app.db")
    try:
        assert app_file.execute("SELECT count(*) FROM orders").fetchone() == (0,)
    finally:
        app_file.close()
    app_db.dispose()
