"""A shadow request with a synchronous endpoint, its mirror client gone, on PostgreSQL.

FastAPI runs a ``def`` endpoint in a worker thread, which no cancellation can stop. The
request must last as long as the thread: its admission slot stays taken and its shadow scope
(and the rollback at its end) stays open until the thread returns, so the thread's writes
after the disconnect are still validated and rolled back inside the scope, never after it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from shadowguard import current_scope
from shadowguard.middleware import _admission
from shadowguard.middleware.asgi import ShadowGuardMiddleware
from tests.integrations._sa_backends import Backend
from tests.middleware._asgi_driver import Exchange
from tests.middleware._shed import fresh_gate

SINK = "sqlalchemy"
pytestmark = [pytest.mark.usefixtures("installed")]
SHADOW = [(b"x-shadow-request", b"1")]


@pytest.fixture(autouse=True)
def _gate(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_gate(monkeypatch)


class Endpoint:
    """A synchronous order endpoint that writes, waits for the test, writes again, commits."""

    def __init__(self, engine: Engine, table: str) -> None:
        self.engine = engine
        self.table = table
        self.waiting = threading.Event()
        self.go_on = threading.Event()
        self.seen: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []

    def __call__(self, order_id: int) -> dict[str, int]:
        try:
            with Session(self.engine) as session:
                insert = text(f"INSERT INTO {self.table} (id, n) VALUES (:id, :n)")
                session.execute(insert, {"id": order_id, "n": 1})
                self.waiting.set()
                assert self.go_on.wait(10)
                scope = current_scope()
                self.seen.append(
                    {
                        "open": scope is not None and not scope.ended,
                        "slots": _admission.running(),
                    }
                )
                session.execute(insert, {"id": order_id + 1, "n": 2})
                session.commit()
        except BaseException as exc:
            self.errors.append(exc)
            raise
        return {"id": order_id}


@pytest.fixture
def endpoint(pg: Backend) -> Iterator[Endpoint]:
    engine = pg.engine(pool_size=2, max_overflow=0)
    yield Endpoint(engine, pg.table)
    engine.dispose()


def build(endpoint: Endpoint) -> Any:
    app = FastAPI()

    @app.post("/orders/{order_id}")
    def create(order_id: int) -> dict[str, int]:
        return endpoint(order_id)

    return ShadowGuardMiddleware(app, max_concurrent_shadow=1)


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, event.wait, 5)


@pytest.mark.asyncio
async def test_the_request_lasts_as_long_as_its_thread(pg: Backend, endpoint: Endpoint) -> None:
    app = build(endpoint)
    exchange = Exchange(app, "POST", "/orders/10", SHADOW)
    task = exchange.start()
    await wait_for(endpoint.waiting)
    exchange.disconnect()
    await asyncio.sleep(0.2)
    assert not task.done(), "the request ended while its thread still runs"
    assert _admission.running() == 1
    shed = Exchange(app, "POST", "/orders/20", SHADOW)
    await asyncio.wait_for(shed.start(), 2)
    assert shed.status == 503, "a slot was freed while its thread still runs"

    endpoint.go_on.set()
    await asyncio.wait_for(task, 5)
    assert endpoint.seen == [{"open": True, "slots": 1}]
    assert endpoint.errors == []
    assert _admission.running() == 0
    assert exchange.status is None, "nobody reads the answer of a cancelled request"
    assert pg.oracle(f"SELECT id FROM {pg.table}") == []

    # The primary runs the same endpoint to its end, disconnect or not.
    endpoint.waiting.clear()
    primary = Exchange(app, "POST", "/orders/30")
    task = primary.start()
    await wait_for(endpoint.waiting)
    primary.disconnect()
    await asyncio.wait_for(task, 5)
    assert primary.status == 200
    assert pg.oracle(f"SELECT id, n FROM {pg.table} ORDER BY id") == [(30, 1), (31, 2)]
