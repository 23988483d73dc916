"""httpx and httpx2 against a real loopback server: shadow stubs, allowed reads, primary untouched."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

import shadowguard
from shadowguard import ShadowSideEffectBlocked, configure
from shadowguard._config import reset
from shadowguard._outbound import BLOCK, STUB_HEADER, Allow, OutboundRequest, Reply, Stub
from tests.integrations._http import (
    ALLOW_READS,
    MARKER,
    check_shadow_mode_without_a_scope_is_guarded,
    check_threads_keep_shadow_only_with_propagate,
    exporting_in_shadow,
    suppress_instrumentation,
)
from tests.peers.http import HttpServer

LIBRARIES = ["httpx", "httpx2"]
SINK_OPTIONS = {"allow": ALLOW_READS}
#: ``lib`` and its integration, installed with loopback reads under /read allowed.
INSTALLED = pytest.mark.parametrize(
    ("lib", "installed"), [(name, name) for name in LIBRARIES], ids=LIBRARIES, indirect=True
)


@pytest.fixture(params=LIBRARIES)
def lib(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


class Counting:
    """An in-process peer (MockTransport handler, ASGI app) that counts what reached it."""

    def __init__(self, lib: ModuleType) -> None:
        self.lib = lib
        self.calls: list[Any] = []

    def handler(self, request: Any) -> Any:
        self.calls.append(request)
        return self.lib.Response(201, json={"mock": True})

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls.append(scope)
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b'{"asgi": true}'})


SyncForm = Callable[[ModuleType, str], Any]


def _plain(lib: ModuleType, url: str) -> Any:
    return lib.post(url, json={"amount": 1})


def _client(lib: ModuleType, url: str) -> Any:
    with lib.Client() as client:
        return client.post(url, content=b"x")


def _custom_transport(lib: ModuleType, url: str) -> Any:
    with lib.Client(transport=lib.HTTPTransport(retries=0)) as client:
        return client.put(url)


def _mounts(lib: ModuleType, url: str) -> Any:
    with lib.Client(mounts={"http://127.0.0.1": lib.HTTPTransport()}) as client:
        return client.delete(url)


def _stream(lib: ModuleType, url: str) -> Any:
    with lib.Client() as client, client.stream("POST", url, content=b"x") as response:
        response.read()
        return response


def _request_object(lib: ModuleType, url: str) -> Any:
    with lib.Client() as client:
        return client.send(client.build_request("PATCH", url))


FORMS: dict[str, SyncForm] = {
    "plain": _plain,
    "client": _client,
    "custom_transport": _custom_transport,
    "mounts": _mounts,
    "stream": _stream,
    "send": _request_object,
}


@pytest.mark.parametrize("form", FORMS)
@INSTALLED
@pytest.mark.usefixtures("installed")
def test_shadow_requests_never_reach_the_server(
    lib: ModuleType, http_server: HttpServer, form: str
) -> None:
    """Every client form: 0 hits in shadow, a stub with the request set; 1 hit as primary."""
    with shadowguard.shadow() as scope:
        response = FORMS[form](lib, f"{http_server.url}/pay?key=sk_live_1")
    assert http_server.count() == 0
    assert response.headers[STUB_HEADER] == "1"
    assert response.json() == {}
    assert response.request.url.path == "/pay"
    assert scope.counts["http.request"] == 1
    assert scope.suppressed[0].target.endswith("/pay?key=***")
    response = FORMS[form](lib, f"{http_server.url}/pay")
    assert http_server.count() == 1
    assert STUB_HEADER not in response.headers
    assert MARKER not in http_server.hits[0].headers


@INSTALLED
@pytest.mark.usefixtures("installed")
def test_proxies_are_guarded(lib: ModuleType, http_server: HttpServer) -> None:
    """The loopback server acting as the proxy sees nothing in shadow, the request as primary."""
    with lib.Client(proxy=http_server.url) as client:
        with shadowguard.shadow():
            stub = client.post("http://upstream.invalid/charge")
        assert http_server.count() == 0
        assert stub.headers[STUB_HEADER] == "1"
        client.post("http://upstream.invalid/charge")
    assert [h.path for h in http_server.hits] == ["http://upstream.invalid/charge"]


@INSTALLED
@pytest.mark.usefixtures("installed")
def test_mock_transport_is_guarded(lib: ModuleType) -> None:
    peer = Counting(lib)
    with lib.Client(transport=lib.MockTransport(peer.handler)) as client:
        with shadowguard.shadow():
            assert client.post("http://api.test/charge").headers[STUB_HEADER] == "1"
        assert peer.calls == []
        assert client.post("http://api.test/charge").json() == {"mock": True}
    assert len(peer.calls) == 1


@INSTALLED
@pytest.mark.usefixtures("installed")
def test_wsgi_transport_is_guarded(lib: ModuleType) -> None:
    calls: list[str] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        start_response("201 Created", [("content-type", "text/plain")])
        return [b"wsgi"]

    with lib.Client(transport=lib.WSGITransport(app=app)) as client:
        with shadowguard.shadow():
            assert client.post("http://app.test/pay").headers[STUB_HEADER] == "1"
        assert calls == []
        assert client.post("http://app.test/pay").text == "wsgi"
    assert calls == ["/pay"]


@pytest.mark.asyncio
@INSTALLED
@pytest.mark.usefixtures("installed")
async def test_async_client_forms(lib: ModuleType, http_server: HttpServer) -> None:
    peer = Counting(lib)
    async with lib.AsyncClient() as client:
        with shadowguard.shadow() as scope:
            first = await client.post(f"{http_server.url}/pay")
            async with client.stream("POST", f"{http_server.url}/pay") as streamed:
                chunks = [c async for c in streamed.aiter_bytes()]
            read = await client.get(f"{http_server.url}/read/1")
        assert first.json() == {}
        assert chunks == [b"{}"]
        assert read.json()["real"] is True
        assert [h.path for h in http_server.hits] == ["/read/1"]
        assert http_server.hits[0].headers[MARKER] == "1"
        assert scope.counts["http.request"] == 2
        await client.post(f"{http_server.url}/pay")
    assert http_server.count() == 2
    async with lib.AsyncClient(transport=lib.ASGITransport(app=peer.app)) as client:
        with shadowguard.shadow():
            stub = await client.post("http://app.test/pay")
        assert peer.calls == []
        assert stub.headers[STUB_HEADER] == "1"
        assert (await client.post("http://app.test/pay")).json() == {"asgi": True}
    assert len(peer.calls) == 1


@INSTALLED
@pytest.mark.usefixtures("installed")
def test_allowed_reads_go_out_with_the_marker(lib: ModuleType, http_server: HttpServer) -> None:
    with shadowguard.shadow() as scope:
        response = lib.get(f"{http_server.url}/read/items?page=2")
        head = lib.head(f"{http_server.url}/read/items")
        posted = lib.post(f"{http_server.url}/read/items")
    assert response.json()["real"] is True
    assert head.status_code == 200
    assert posted.headers[STUB_HEADER] == "1"
    assert [(h.method, h.headers[MARKER]) for h in http_server.hits] == [
        ("GET", "1"),
        ("HEAD", "1"),
    ]
    assert scope.counts["http.request"] == 1


def test_marker_carries_the_secret_only_where_forwarded_or_is_left_out_when_disabled(
    lib: ModuleType, http_server: HttpServer
) -> None:
    """A third party never sees the secret; a host allowed with forward_secret=True does."""
    module = importlib.import_module(f"shadowguard.integrations.{lib.__name__}")
    module.install(
        allow=[
            Allow(url="http://127.0.0.1:*/read/internal*", forward_secret=True),
            Allow(url="http://127.0.0.1:*/read*"),
        ]
    )
    try:
        configure(marker_secret="s3cret")
        with shadowguard.shadow():
            lib.get(f"{http_server.url}/read/internal")
            lib.get(f"{http_server.url}/read/partner")
        configure(marker_header="")
        with shadowguard.shadow():
            lib.get(f"{http_server.url}/read/2")
    finally:
        reset()
        module.uninstall()
    assert [(h.path, h.headers.get(MARKER)) for h in http_server.hits] == [
        ("/read/internal", "s3cret"),
        ("/read/partner", "1"),
        ("/read/2", None),
    ]


@INSTALLED
@pytest.mark.usefixtures("installed")
def test_suppress_instrumentation_does_not_open_other_urls(
    lib: ModuleType, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """App code under OpenTelemetry's suppress key: a shadow POST is still stubbed."""
    traces = f"{http_server.url}/v1/traces"
    with exporting_in_shadow(monkeypatch, traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") as scope:
        stubbed = lib.post(f"{http_server.url}/charge", json={"amount": 1})
        exported = lib.post(f"{http_server.url}/v1/traces", content=b"spans")
    assert STUB_HEADER in stubbed.headers
    assert STUB_HEADER not in exported.headers
    assert scope.counts["http.request"] == 1
    with suppress_instrumentation():
        lib.post(f"{http_server.url}/charge", json={"amount": 2})  # primary
    assert [h.path for h in http_server.hits] == ["/v1/traces", "/charge"]


@INSTALLED
@pytest.mark.usefixtures("installed")
def test_each_redirect_hop_is_judged(lib: ModuleType, http_server: HttpServer) -> None:
    """An allowed read redirected elsewhere: the next hop is stubbed, not followed."""
    with shadowguard.shadow():
        response = lib.get(f"{http_server.url}/read/redirect", follow_redirects=True)
    # /read/redirect is allowed and answers 302 to /landing, which is not.
    assert [h.path for h in http_server.hits] == ["/read/redirect"]
    assert response.headers[STUB_HEADER] == "1"
    assert response.request.url.path == "/landing"
    assert [r.status_code for r in response.history] == [302]


def test_stubs_behave_like_real_responses(lib: ModuleType, http_server: HttpServer) -> None:
    def echo(request: OutboundRequest) -> Reply:
        return Reply(200, {"x-echo": request.method}, json={"got": request.json()})

    sink = importlib.import_module(f"shadowguard.integrations.{lib.__name__}")
    sink.install(
        stubs=[
            Stub(method="POST", url="http://127.0.0.1:*/declined", status=402, json={"e": 1}),
            Stub(method=["POST", "PUT"], url="http://127.0.0.1:*/echo", respond=echo),
            Stub(url="http://127.0.0.1:*/text", text="hé", headers={"x-a": "b"}),
        ]
    )
    try:
        with shadowguard.shadow(), lib.Client() as client:
            declined = client.post(f"{http_server.url}/declined")
            with pytest.raises(lib.HTTPStatusError) as excinfo:
                declined.raise_for_status()
            echoed = client.put(f"{http_server.url}/echo", json={"n": 1})
            with client.stream("DELETE", f"{http_server.url}/text") as streamed:
                assert streamed.is_stream_consumed is False
                text = "".join(streamed.iter_text())
    finally:
        sink.uninstall()
    assert http_server.count() == 0
    assert excinfo.value.response.status_code == 402
    assert excinfo.value.request.url.path == "/declined"
    assert echoed.json() == {"got": {"n": 1}}
    assert echoed.headers["x-echo"] == "PUT"
    assert text == "hé"
    assert streamed.headers["x-a"] == "b"
    assert streamed.headers["content-type"].startswith("text/plain")


def test_default_block_raises_before_anything_is_sent(
    lib: ModuleType, http_server: HttpServer
) -> None:
    """The refusal is recorded as blocked, with the error it raised."""
    sink = importlib.import_module(f"shadowguard.integrations.{lib.__name__}")
    sink.install(default=BLOCK)
    try:
        with (
            shadowguard.shadow() as scope,
            pytest.raises(ShadowSideEffectBlocked, match="Stub") as refusal,
        ):
            lib.post(f"{http_server.url}/pay")
    finally:
        sink.uninstall()
    assert http_server.count() == 0
    (blocked,) = scope.suppressed
    assert blocked.detail["action"] == "blocked"
    assert blocked.blocked
    assert blocked.error is refusal.value
    assert blocked.detail["operation"] == "send"
    assert blocked.detail["client"] == lib.__name__


@INSTALLED
@pytest.mark.usefixtures("installed")
def test_websocket_upgrades_are_never_allowed(lib: ModuleType, http_server: HttpServer) -> None:
    with shadowguard.shadow():
        response = lib.get(f"{http_server.url}/read/ws", headers={"Upgrade": "websocket"})
    assert http_server.count() == 0
    assert response.headers[STUB_HEADER] == "1"


@INSTALLED
@pytest.mark.usefixtures("installed")
def test_threads_keep_shadow_only_with_propagate(lib: ModuleType, http_server: HttpServer) -> None:
    check_threads_keep_shadow_only_with_propagate(lib.post, http_server)


@INSTALLED
@pytest.mark.usefixtures("installed")
def test_shadow_mode_without_a_scope_is_guarded(lib: ModuleType, http_server: HttpServer) -> None:
    check_shadow_mode_without_a_scope_is_guarded(lib.post, http_server)


def test_a_client_created_before_install_is_guarded(
    lib: ModuleType, http_server: HttpServer
) -> None:
    """The patch is on the class: clients that already exist are covered too."""
    sink = importlib.import_module(f"shadowguard.integrations.{lib.__name__}")
    with lib.Client() as client:
        sink.install()
        try:
            with shadowguard.shadow():
                assert client.post(f"{http_server.url}/pay").headers[STUB_HEADER] == "1"
        finally:
            sink.uninstall()
    assert http_server.count() == 0


def test_guard_one_client_without_install(lib: ModuleType, http_server: HttpServer) -> None:
    from shadowguard.integrations import httpx as sink

    guarded = sink.guard(lib.Client(), allow=["http://127.0.0.1:*/feed"])
    other = lib.Client()
    try:
        with shadowguard.shadow():
            assert guarded.post(f"{http_server.url}/pay").headers[STUB_HEADER] == "1"
            assert guarded.get(f"{http_server.url}/feed").json()["real"] is True
            other.post(f"{http_server.url}/unguarded")  # not guarded, not installed: goes out
        guarded.post(f"{http_server.url}/pay")
    finally:
        guarded.close()
        other.close()
    assert [(h.method, h.path) for h in http_server.hits] == [
        ("GET", "/feed"),
        ("POST", "/unguarded"),
        ("POST", "/pay"),
    ]
    assert http_server.hits[0].headers[MARKER] == "1"
    assert MARKER not in http_server.hits[2].headers


def test_guard_with_own_rules_overrides_install(lib: ModuleType, http_server: HttpServer) -> None:
    from shadowguard.integrations import httpx as sink

    own = importlib.import_module(f"shadowguard.integrations.{lib.__name__}")
    own.install(default=BLOCK)
    try:
        client = sink.guard(lib.Client(), stubs=[Stub(status=204)])
        with shadowguard.shadow():
            assert client.post(f"{http_server.url}/pay").status_code == 204
            with pytest.raises(ShadowSideEffectBlocked):
                lib.post(f"{http_server.url}/pay")
        client.close()
    finally:
        own.uninstall()
    assert http_server.count() == 0


def test_primary_errors_are_unchanged(lib: ModuleType, closed_port: int) -> None:
    sink = importlib.import_module(f"shadowguard.integrations.{lib.__name__}")
    url = f"http://127.0.0.1:{closed_port}/pay"
    with pytest.raises(lib.ConnectError) as unguarded:
        lib.post(url)
    sink.install()
    try:
        with pytest.raises(lib.ConnectError) as guarded:
            lib.post(url)
    finally:
        sink.uninstall()
    assert type(guarded.value) is type(unguarded.value)
    assert str(guarded.value) == str(unguarded.value)


def test_uninstall_restores_the_client(lib: ModuleType, http_server: HttpServer) -> None:
    original = vars(lib.Client)["_transport_for_url"]
    sink = importlib.import_module(f"shadowguard.integrations.{lib.__name__}")
    sink.install()
    sink.install()
    sink.uninstall()
    assert vars(lib.Client)["_transport_for_url"] is original
    with shadowguard.shadow():
        lib.post(f"{http_server.url}/pay")
    assert http_server.count() == 1


@INSTALLED
@pytest.mark.usefixtures("installed")
def test_stubbed_requests_tag_the_span(lib: ModuleType, span_exporter: Any) -> None:
    from opentelemetry import trace

    with trace.get_tracer("test").start_as_current_span("handler"), shadowguard.shadow():
        lib.post("http://127.0.0.1:9/pay")
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["http.request_stubbed"] is True
    assert json.dumps(span.events[0].attributes["target"]) == '"POST http://127.0.0.1:9/pay"'


@pytest.mark.asyncio
async def test_guard_one_async_client(lib: ModuleType, http_server: HttpServer) -> None:
    from shadowguard.integrations import httpx as sink

    async with sink.guard(lib.AsyncClient()) as client:
        with shadowguard.shadow():
            head = await client.head(f"{http_server.url}/pay")
        assert http_server.count() == 0
        assert head.headers[STUB_HEADER] == "1"
        assert head.content == b""
        await client.post(f"{http_server.url}/pay")
    assert http_server.count() == 1
