from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import shadowguard
from shadowguard import ConfigError, current_scope, is_shadow
from shadowguard.middleware.asgi import ShadowGuardMiddleware
from tests.middleware._helpers import durations, new_durations, save_into
from tests.middleware.conftest import PgTable

SHADOW_HOST = {"host": "orders-shadow:8080"}


def build_app(table: PgTable | None = None, **options: Any) -> tuple[Any, list[Any]]:
    """A Starlette app whose endpoints note what they saw in ``seen``."""
    seen: list[Any] = []
    save = save_into(table)

    async def order(request: Request) -> JSONResponse:
        seen.append(("view", is_shadow(), current_scope()))
        ref = request.path_params["ref"]
        save(ref)
        return JSONResponse(
            {"ref": ref}, background=BackgroundTask(background, f"{ref}-background")
        )

    async def background(ref: str) -> None:
        seen.append(("background", is_shadow(), current_scope()))
        save(ref)

    async def stream(request: Request) -> StreamingResponse:
        async def body():
            for i in range(3):
                await asyncio.sleep(0)
                seen.append(("chunk", is_shadow(), current_scope()))
                save(f"chunk-{i}")
                yield b"x"

        return StreamingResponse(body())

    async def boom(request: Request) -> JSONResponse:
        raise RuntimeError("boom")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"shadow": is_shadow()})
        await websocket.close()

    app = Starlette(
        routes=[
            Route("/orders/{ref}", order, methods=["POST"]),
            Route("/stream", stream),
            Route("/boom", boom),
            WebSocketRoute("/ws", ws),
        ]
    )
    return ShadowGuardMiddleware(app, **options), seen


async def call(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://orders:8080") as client:
        return await client.request(method, url, **kwargs)


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_shadow_request_suppresses_view_and_background_writes(pg_table: PgTable) -> None:
    """Shadow (-shadow Host): no row from the view nor the background task; primary writes both."""
    app, seen = build_app(pg_table)
    response = await call(app, "POST", "/orders/a1", headers=SHADOW_HOST)
    assert response.status_code == 200
    assert pg_table.refs() == []
    (view, view_shadow, scope), (bg, bg_shadow, bg_scope) = seen
    assert (view, view_shadow, bg, bg_shadow) == ("view", True, "background", True)
    assert scope is bg_scope is not None
    assert scope.counts == {"call": 2}
    assert current_scope() is None

    seen.clear()
    response = await call(app, "POST", "/orders/a2")
    assert response.status_code == 200
    assert pg_table.refs() == ["a2", "a2-background"]
    assert [(w, s, sc) for w, s, sc in seen] == [("view", False, None), ("background", False, None)]


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_streaming_body_stays_shadow(pg_table: PgTable) -> None:
    """Chunks produced after the endpoint returned still run in the request's scope."""
    app, seen = build_app(pg_table)
    response = await call(app, "GET", "/stream", headers={"x-shadow-request": "1"})
    assert response.content == b"xxx"
    assert [s for _, s, _ in seen] == [True, True, True]
    assert seen[0][2] is not None
    assert seen[0][2].counts == {"call": 3}
    assert pg_table.refs() == []
    seen.clear()
    await call(app, "GET", "/stream")
    assert [s for _, s, _ in seen] == [False, False, False]
    assert pg_table.refs() == ["chunk-0", "chunk-1", "chunk-2"]


@pytest.mark.asyncio
async def test_primary_request_has_no_scope_and_forced_primary_ignores_signals() -> None:
    app, seen = build_app(None, mode="primary")
    response = await call(
        app, "POST", "/orders/x", headers={**SHADOW_HOST, "x-shadow-request": "1"}
    )
    # With mode=primary the signals are ignored: no scope, and the side effect really runs
    # (and fails, because this app has no table).
    assert response.status_code == 500
    assert seen == [("view", False, None)]


@pytest.mark.asyncio
async def test_forced_shadow_mode_enters_a_scope_without_any_signal() -> None:
    app, seen = build_app(None, mode="shadow")
    response = await call(app, "POST", "/orders/x")
    assert response.status_code == 200
    assert seen[0][1] is True
    assert seen[0][2] is not None
    assert seen[0][2].reason == "request:env"


@pytest.mark.asyncio
async def test_http2_authority_and_marker_secret() -> None:
    """ASGI servers pass HTTP/2 :authority as the host header; a wrong secret is primary."""
    scope_seen: list[bool] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        scope_seen.append(is_shadow())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guarded = ShadowGuardMiddleware(inner, marker_secret="s3cret")
    for headers in [
        [(b"host", b"api-shadow")],
        [(b"host", b"api"), (b"x-shadow-request", b"wrong")],
        [(b"host", b"api"), (b"x-shadow-request", b"s3cret")],
        [],
    ]:
        await _raw_http(guarded, headers)
    assert scope_seen == [True, False, True, False]


async def _raw_http(app: Any, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "2",
        "method": "GET",
        "scheme": "https",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": headers,
        "server": ("10.0.0.1", 443),
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.asyncio
async def test_lifespan_passes_through_untouched() -> None:
    received: list[tuple[str, bool]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        received.append((scope["type"], is_shadow()))
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.complete"})

    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    await ShadowGuardMiddleware(inner, mode="shadow")({"type": "lifespan"}, receive, send)
    assert received == [("lifespan", False)]
    assert sent == [{"type": "lifespan.startup.complete"}]


def test_websocket_connection_is_shadow_when_detected() -> None:
    """The WebSocket handshake is detected like a request; the whole connection is shadow."""
    app, _ = build_app(None)
    client = TestClient(app)
    with client.websocket_connect("/ws", headers={"x-shadow-request": "1"}) as ws:
        assert ws.receive_json() == {"shadow": True}
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"shadow": False}


def test_starlette_testclient_works() -> None:
    app, seen = build_app(None)
    with TestClient(app) as client:
        assert client.get("/stream", headers=SHADOW_HOST).content == b"xxx"
    assert all(s for _, s, _ in seen)


@pytest.mark.asyncio
async def test_exception_ends_the_scope_and_is_recorded(metric_reader: Any) -> None:
    app, _ = build_app(None)
    before = durations(metric_reader)
    response = await call(app, "GET", "/boom", headers=SHADOW_HOST)
    assert response.status_code == 500
    assert current_scope() is None
    added = new_durations(before, durations(metric_reader))
    # Starlette's ServerErrorMiddleware sends the 500 before re-raising.
    assert added == {
        (("http.response.status_code", 500), ("http.route", "/boom"), ("shadow", True)): 1
    }


@pytest.mark.asyncio
async def test_histogram_has_route_status_and_shadow(metric_reader: Any) -> None:
    api = FastAPI()

    @api.get("/items/{item_id}")
    async def item(item_id: int, tasks: BackgroundTasks) -> dict[str, int]:
        return {"item_id": item_id}

    app = ShadowGuardMiddleware(api)
    before = durations(metric_reader)
    await call(app, "GET", "/items/1")
    await call(app, "GET", "/items/2", headers=SHADOW_HOST)
    await call(app, "GET", "/items/3", headers=SHADOW_HOST)
    added = new_durations(before, durations(metric_reader))
    route = ("http.route", "/items/{item_id}")
    assert added == {
        (("http.response.status_code", 200), route, ("shadow", False)): 1,
        (("http.response.status_code", 200), route, ("shadow", True)): 2,
    }


@pytest.mark.asyncio
async def test_debug_log_summarises_a_shadow_request(caplog: pytest.LogCaptureFixture) -> None:
    app, _ = build_app(None)
    ok = {"save": 0}

    caplog.set_level(logging.DEBUG, logger="shadowguard.middleware")
    await call(app, "POST", "/orders/z", headers=SHADOW_HOST)
    await call(app, "GET", "/boom")
    lines = [r.getMessage() for r in caplog.records if r.name == "shadowguard.middleware"]
    assert lines == ["shadowguard: shadow request POST /orders/z -> 200 suppressed 2 call"]
    assert ok == {"save": 0}


@pytest.mark.asyncio
async def test_concurrent_primary_and_shadow_requests_do_not_mix() -> None:
    checked: list[bool] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        expected = any(name == b"x-shadow-request" for name, _ in scope["headers"])
        for _ in range(5):
            await asyncio.sleep(0)
            checked.append(is_shadow() == expected)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = ShadowGuardMiddleware(inner)
    await asyncio.gather(
        *(_raw_http(app, [(b"x-shadow-request", b"1")] if i % 2 else []) for i in range(40))
    )
    assert len(checked) == 200
    assert all(checked)


def test_bad_options_fail_at_start_up() -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> None: ...

    with pytest.raises(ConfigError, match="marker_header"):
        ShadowGuardMiddleware(inner, marker_header="not a header")
    with pytest.raises(ConfigError, match="unknown setting"):
        ShadowGuardMiddleware(inner, marker="x")


def test_bad_environment_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> None: ...

    monkeypatch.setenv("SHADOWGUARD_BAGGAGE", "maybe")
    shadowguard._config.reset()
    with pytest.raises(ConfigError, match="SHADOWGUARD_BAGGAGE"):
        ShadowGuardMiddleware(inner)
    monkeypatch.delenv("SHADOWGUARD_BAGGAGE")
    shadowguard._config.reset()


@pytest.mark.asyncio
async def test_primary_request_messages_are_untouched() -> None:
    """The server sees exactly the same messages with and without the middleware."""
    received: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        received.append((dict(scope), await receive(), is_shadow(), current_scope()))
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-order", b"1")]})
        await send({"type": "http.response.body", "body": b"created", "more_body": False})

    headers = [(b"host", b"orders"), (b"x-request-id", b"abc")]
    bare = await _raw_http(inner, headers)
    guarded = await _raw_http(ShadowGuardMiddleware(inner), headers)
    assert guarded == bare
    assert received[0] == received[1]
    assert received[1][2:] == (False, None)


@pytest.mark.asyncio
async def test_shadow_mode_environment_gives_every_request_a_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHADOW_MODE", "true")
    shadowguard._config.reset()
    try:
        app, seen = build_app(None)
        await call(app, "POST", "/orders/m1")
        assert seen[0][1] is True
        assert seen[0][2] is not None
        assert seen[0][2].reason == "request:env"
    finally:
        monkeypatch.delenv("SHADOW_MODE")
        shadowguard._config.reset()
