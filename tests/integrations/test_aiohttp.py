"""aiohttp's client against real loopback servers (HTTP, and WebSocket on aiohttp.web):
shadow stubs, allowed reads, refusals, primary untouched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

import shadowguard
from shadowguard import ConfigError, ShadowSideEffectBlocked, is_stub
from shadowguard._outbound import BLOCK, OutboundRequest, Reply, Stub
from shadowguard.integrations import aiohttp as sink
from tests.integrations._http import (
    ALLOW_READS,
    MARKER,
    check_sent_as_primary,
    check_stubbed_in_shadow,
)
from tests.integrations._support import installing
from tests.peers.http import HttpServer

SINK = "aiohttp"
SINK_OPTIONS = {"allow": ALLOW_READS}

Form = Callable[[str], Awaitable[tuple[Any, bytes]]]


async def _post(url: str) -> tuple[Any, bytes]:
    async with aiohttp.ClientSession() as session, session.post(url, json={"a": 1}) as r:
        return r, await r.read()


async def _request(url: str) -> tuple[Any, bytes]:
    async with aiohttp.ClientSession() as session, session.request("PUT", url, data=b"x") as r:
        return r, await r.read()


async def _module_request(url: str) -> tuple[Any, bytes]:
    async with aiohttp.request("DELETE", url) as r:
        return r, await r.read()


async def _stream(url: str) -> tuple[Any, bytes]:
    async with aiohttp.ClientSession() as session, session.patch(url, data=b"x") as r:
        return r, b"".join([chunk async for chunk in r.content.iter_chunked(1)])


async def _no_middlewares(url: str) -> tuple[Any, bytes]:
    """A request's ``middlewares=()`` replaces the session's: not the guard."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=b"x", middlewares=()) as r,
    ):
        return r, await r.read()


FORMS: dict[str, Form] = {
    "post": _post,
    "request": _request,
    "module_request": _module_request,
    "stream": _stream,
    "no_middlewares": _no_middlewares,
}


@pytest.mark.asyncio
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.usefixtures("installed")
async def test_shadow_requests_never_reach_the_server(http_server: HttpServer, form: str) -> None:
    """Every form: 0 hits in shadow, a stub; 1 hit as primary, without any marker."""
    with shadowguard.shadow() as scope:
        response, body = await FORMS[form](f"{http_server.url}/pay?key=sk_live_1")
    check_stubbed_in_shadow(http_server, scope, response, body, "aiohttp")
    response, body = await FORMS[form](f"{http_server.url}/pay")
    check_sent_as_primary(http_server, response, body)


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_allowed_reads_go_out_with_the_marker(http_server: HttpServer) -> None:
    async with aiohttp.ClientSession() as session:
        with shadowguard.shadow() as scope:
            async with session.get(f"{http_server.url}/read/items?page=2") as got:
                assert (await got.json())["real"] is True
            async with session.head(f"{http_server.url}/read/head") as head:
                assert head.status == 200
            async with session.post(f"{http_server.url}/read/items") as posted:
                assert is_stub(posted)
    assert [(h.method, h.path, h.headers[MARKER]) for h in http_server.hits] == [
        ("GET", "/read/items?page=2", "1"),
        ("HEAD", "/read/head", "1"),
    ]
    assert scope.counts["http.request"] == 1


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_each_redirect_hop_is_judged(http_server: HttpServer) -> None:
    async with aiohttp.ClientSession() as session:
        with shadowguard.shadow():
            async with session.get(f"{http_server.url}/read/redirect") as response:
                await response.read()
    assert [h.path for h in http_server.hits] == ["/read/redirect"]
    assert is_stub(response)
    assert response.url.path == "/landing"
    assert [r.status for r in response.history] == [302]


@pytest.mark.asyncio
async def test_stubs_behave_like_real_responses(http_server: HttpServer) -> None:
    def echo(request: OutboundRequest) -> Reply:
        return Reply(201, headers={"x-echo": "1"}, json={"got": request.json()})

    stubs = [
        Stub(method="POST", url="http://127.0.0.1:*/declined", status=402, json={"e": 1}),
        Stub(method="PUT", url="http://127.0.0.1:*/echo", respond=echo),
        Stub(method="POST", url="http://127.0.0.1:*/text", text="héllo"),
    ]
    with installing(sink, stubs=stubs):
        async with aiohttp.ClientSession() as session:
            with shadowguard.shadow():
                async with session.post(f"{http_server.url}/declined") as declined:
                    assert not declined.ok
                    assert await declined.json() == {"e": 1}
                    with pytest.raises(aiohttp.ClientResponseError) as failed:
                        declined.raise_for_status()
                async with session.put(f"{http_server.url}/echo", json={"n": 1}) as echoed:
                    assert echoed.status == 201
                    assert echoed.reason == "Created"
                    assert echoed.headers["x-echo"] == "1"
                    assert echoed.content_type == "application/json"
                    assert await echoed.content.read(4) == b'{"go'
                    assert await echoed.content.read() == b't": {"n": 1}}'
                async with session.post(f"{http_server.url}/text") as text:
                    assert await text.text() == "héllo"
                    assert await text.read() == "héllo".encode()
                with pytest.raises(aiohttp.ClientResponseError):
                    await session.post(f"{http_server.url}/declined", raise_for_status=True)
    assert http_server.count() == 0
    assert failed.value.status == 402
    assert failed.value.request_info.method == "POST"


@pytest.mark.asyncio
async def test_default_block_raises_before_anything_is_sent(http_server: HttpServer) -> None:
    with installing(sink, default=BLOCK):
        async with aiohttp.ClientSession() as session:
            with shadowguard.shadow() as scope, pytest.raises(ShadowSideEffectBlocked) as refused:
                await session.post(f"{http_server.url}/pay", data=b"x")
            async with session.post(f"{http_server.url}/pay") as primary:
                assert not is_stub(primary)
    assert [h.path for h in http_server.hits] == ["/pay"]
    assert [s.blocked for s in scope.suppressed] == [True]
    assert scope.suppressed[0].error is refused.value


@pytest.mark.asyncio
async def test_a_session_made_before_install_is_guarded(http_server: HttpServer) -> None:
    """The patch is on the class: a kept session with a pooled connection is covered."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{http_server.url}/warm") as warm:
            await warm.read()
        with installing(sink):
            with shadowguard.shadow():
                async with session.post(f"{http_server.url}/pay") as stub:
                    assert is_stub(stub)
            async with session.post(f"{http_server.url}/after") as after:
                assert not is_stub(after)
    assert [h.path for h in http_server.hits] == ["/warm", "/after"]


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_the_request_is_judged_where_it_runs(http_server: HttpServer) -> None:
    """Made in shadow and awaited as primary goes out; the other way round is stubbed."""
    async with aiohttp.ClientSession() as session:
        with shadowguard.shadow():
            made_in_shadow = session.post(f"{http_server.url}/made-in-shadow")
        made_as_primary = session.post(f"{http_server.url}/made-as-primary")
        async with made_in_shadow as primary:
            assert not is_stub(primary)
        with shadowguard.shadow():
            async with made_as_primary as shadow:
                assert is_stub(shadow)

            async def in_a_task() -> Any:
                async with session.post(f"{http_server.url}/task") as response:
                    return response

            assert is_stub(await asyncio.create_task(in_a_task()))
            with shadowguard.detached():
                detached = asyncio.create_task(in_a_task())
            assert not is_stub(await detached)
    assert sorted(h.path for h in http_server.hits) == ["/made-in-shadow", "/task"]


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_session_middlewares_see_the_stub(http_server: HttpServer) -> None:
    """The guard is innermost: a session's middleware runs around it and sees the stub."""
    seen: list[Any] = []

    async def middleware(request: Any, handler: Any) -> Any:
        request.headers["x-app"] = "1"
        response = await handler(request)
        seen.append(response)
        return response

    async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
        with shadowguard.shadow():
            async with session.post(f"{http_server.url}/pay") as stub:
                assert is_stub(stub)
        async with session.get(f"{http_server.url}/read/x") as real:
            await real.read()
    assert [is_stub(r) for r in seen] == [True, False]
    assert http_server.hits[0].headers["x-app"] == "1"


@dataclass
class WsServer:
    url: str
    handshakes: list[dict[str, str]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


@pytest_asyncio.fixture
async def ws_server() -> AsyncIterator[WsServer]:
    """An aiohttp.web WebSocket echo server on loopback, recording what reached it."""
    state = WsServer("")

    async def handler(request: web.Request) -> web.WebSocketResponse:
        state.handshakes.append({k.lower(): v for k, v in request.headers.items()})
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            state.messages.append(message.data)
            await ws.send_str(f"echo {message.data}")
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    state.url = f"ws://127.0.0.1:{port}/ws"
    try:
        yield state
    finally:
        await runner.cleanup()


async def _talk(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str("pay")
        return (await ws.receive()).data  # type: ignore[no-any-return]


@pytest.mark.asyncio
async def test_websockets_are_refused_unless_a_websockets_rule_names_them(
    ws_server: WsServer,
) -> None:
    """A catch-all stub or an allow rule for reads never opens a WebSocket."""
    with installing(sink, allow=["127.0.0.1"], stubs=[Stub()]):
        with shadowguard.shadow() as scope, pytest.raises(ShadowSideEffectBlocked, match="WebSo"):
            await _talk(ws_server.url)
        assert await _talk(ws_server.url) == "echo pay"  # primary
    assert scope.suppressed[0].blocked
    assert len(ws_server.handshakes) == 1
    with installing(sink, websockets=["ws://127.0.0.1:*/ws"]), shadowguard.shadow():
        assert await _talk(ws_server.url) == "echo pay"
    assert ws_server.messages == ["pay", "pay"]
    assert [MARKER in h for h in ws_server.handshakes] == [False, True]


@pytest.mark.parametrize("rule", ["api.test/v1", 7])
def test_a_bad_websockets_rule_fails_install(rule: Any) -> None:
    with pytest.raises(ConfigError):
        sink.install(websockets=[rule])
    assert not sink._patches.installed


def test_primary_errors_are_unchanged(closed_port: int) -> None:
    async def call() -> type:
        try:
            await _post(f"http://127.0.0.1:{closed_port}/pay")
        except Exception as exc:
            return type(exc)
        raise AssertionError("the call did not fail")

    unguarded = asyncio.run(call())
    with installing(sink):
        guarded = asyncio.run(call())
    assert guarded is unguarded is aiohttp.ClientConnectorError


def test_uninstall_restores_the_session(http_server: HttpServer) -> None:
    original = vars(aiohttp.ClientSession)["_request"]
    sink.install()
    sink.install()
    sink.uninstall()
    assert vars(aiohttp.ClientSession)["_request"] is original
    with shadowguard.shadow():
        asyncio.run(_post(f"{http_server.url}/pay"))
    assert http_server.count() == 1


@pytest.mark.asyncio
async def test_a_redirecting_stub_is_followed_and_the_next_hop_judged(
    http_server: HttpServer,
) -> None:
    go = Stub(
        method="POST", url="http://127.0.0.1:*/go", status=303, headers={"location": "/read/next"}
    )
    with installing(sink, allow=["http://127.0.0.1:*/read/*"], stubs=[go]):
        async with aiohttp.ClientSession() as session:
            with shadowguard.shadow():
                async with session.post(f"{http_server.url}/go", data=b"x") as landed:
                    assert (await landed.json())["path"] == "/read/next"
    assert not is_stub(landed)
    assert [r.status for r in landed.history] == [303]
    assert [(h.method, h.path) for h in http_server.hits] == [("GET", "/read/next")]
