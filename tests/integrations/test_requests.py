"""requests and urllib3 against a real loopback server: shadow stubs, allowed reads, primary untouched."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import requests
import requests.adapters
import urllib3
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from shadowguard._outbound import BLOCK, STUB_HEADER, OutboundRequest, Reply, Stub
from shadowguard.integrations import requests as sink
from tests.integrations._http import (
    ALLOW_READS,
    MARKER,
    check_shadow_mode_without_a_scope_is_guarded,
    check_threads_keep_shadow_only_with_propagate,
    exporting_in_shadow,
    requests_response,
    suppress_instrumentation,
)
from tests.integrations._support import installing
from tests.peers.http import HttpServer

SINK = "requests"
SINK_OPTIONS = {"allow": ALLOW_READS}


class UrllibAdapter(requests.adapters.BaseAdapter):
    """A custom adapter that does not use urllib3 at all (only the Session seam sees it)."""

    def send(self, request: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        raw = urllib.request.urlopen(
            urllib.request.Request(request.url, data=request.body, method=request.method)
        )
        return requests_response(request, raw)

    def close(self) -> None:
        pass


def _plain(url: str) -> Any:
    return requests.post(url, json={"amount": 1})


def _session(url: str) -> Any:
    with requests.Session() as session:
        return session.put(url, data=b"x")


def _custom_adapter(url: str) -> Any:
    with requests.Session() as session:
        session.mount("http://127.0.0.1", UrllibAdapter())
        return session.post(url, data=b"x")


def _stream(url: str) -> Any:
    response = requests.post(url, stream=True)
    response.content  # noqa: B018 - reads the stream
    return response


def _pool_manager(url: str) -> Any:
    return urllib3.PoolManager().request("POST", url, body=b"x")


def _urllib3_request(url: str) -> Any:
    return urllib3.request("DELETE", url)


def _connection_pool(url: str) -> Any:
    parsed = urllib3.util.parse_url(url)
    with urllib3.HTTPConnectionPool(str(parsed.host), parsed.port) as pool:
        return pool.urlopen("POST", parsed.request_uri, preload_content=False)


FORMS: dict[str, Callable[[str], Any]] = {
    "plain": _plain,
    "session": _session,
    "custom_adapter": _custom_adapter,
    "stream": _stream,
    "pool_manager": _pool_manager,
    "urllib3_request": _urllib3_request,
    "connection_pool": _connection_pool,
}


def _data(response: Any) -> bytes:
    return response.content if isinstance(response, requests.Response) else response.data


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.usefixtures("installed")
def test_shadow_requests_never_reach_the_server(http_server: HttpServer, form: str) -> None:
    """Every client form: 0 hits in shadow, a stub; 1 hit as primary, without any marker."""
    with shadowguard.shadow() as scope:
        response = FORMS[form](f"{http_server.url}/pay?key=sk_live_1")
    assert http_server.count() == 0
    assert response.headers[STUB_HEADER] == "1"
    assert _data(response) == b"{}"
    assert scope.counts["http.request"] == 1
    assert scope.suppressed[0].target.endswith("/pay?key=***")
    response = FORMS[form](f"{http_server.url}/pay")
    assert http_server.count() == 1
    assert STUB_HEADER not in (response.headers or {})
    assert MARKER not in http_server.hits[0].headers


@pytest.mark.usefixtures("installed")
def test_proxies_are_guarded(http_server: HttpServer) -> None:
    proxies = {"http": http_server.url}
    with shadowguard.shadow():
        stub = requests.post("http://upstream.invalid/charge", proxies=proxies)
        raw = urllib3.ProxyManager(http_server.url).request("POST", "http://upstream.invalid/x")
    assert http_server.count() == 0
    assert stub.headers[STUB_HEADER] == "1"
    assert raw.headers[STUB_HEADER] == "1"
    requests.post("http://upstream.invalid/charge", proxies=proxies)
    urllib3.ProxyManager(http_server.url).request("POST", "http://upstream.invalid/x")
    assert [h.path for h in http_server.hits] == [
        "http://upstream.invalid/charge",
        "http://upstream.invalid/x",
    ]


@pytest.mark.usefixtures("installed")
def test_allowed_reads_go_out_with_the_marker(http_server: HttpServer) -> None:
    with shadowguard.shadow() as scope:
        got = requests.get(f"{http_server.url}/read/items?page=2")
        raw = urllib3.request("GET", f"{http_server.url}/read/raw")
        posted = requests.post(f"{http_server.url}/read/items")
    assert got.json()["real"] is True
    assert raw.json()["real"] is True
    assert posted.headers[STUB_HEADER] == "1"
    assert [(h.path, h.headers[MARKER]) for h in http_server.hits] == [
        ("/read/items?page=2", "1"),
        ("/read/raw", "1"),
    ]
    assert scope.counts["http.request"] == 1


@pytest.mark.usefixtures("installed")
def test_each_redirect_hop_is_judged(http_server: HttpServer) -> None:
    with shadowguard.shadow():
        response = requests.get(f"{http_server.url}/read/redirect")
        raw = urllib3.request("GET", f"{http_server.url}/read/redirect")
    assert [h.path for h in http_server.hits] == ["/read/redirect"] * 2
    assert response.headers[STUB_HEADER] == "1"
    assert response.url.endswith("/landing")
    assert [r.status_code for r in response.history] == [302]
    assert raw.headers[STUB_HEADER] == "1"


def test_stubs_behave_like_real_responses(http_server: HttpServer) -> None:
    def echo(request: OutboundRequest) -> Reply:
        return Reply(201, json={"got": request.json(), "client": request.client})

    sink.install(
        stubs=[
            Stub(method="POST", url="http://127.0.0.1:*/declined", status=402, json={"e": 1}),
            Stub(method="PUT", url="http://127.0.0.1:*/echo", respond=echo),
        ]
    )
    try:
        with shadowguard.shadow():
            declined = requests.post(f"{http_server.url}/declined")
            with pytest.raises(requests.HTTPError) as excinfo:
                declined.raise_for_status()
            echoed = requests.put(f"{http_server.url}/echo", json={"n": 1})
            streamed = requests.put(f"{http_server.url}/echo", json={"n": 2}, stream=True)
            chunks = list(streamed.iter_content(4))
            raw = urllib3.request("PUT", f"{http_server.url}/echo", json={"n": 3})
    finally:
        sink.uninstall()
    assert http_server.count() == 0
    assert excinfo.value.response is declined
    assert declined.request.method == "POST"
    assert echoed.status_code == 201
    assert echoed.json() == {"got": {"n": 1}, "client": "requests"}
    assert b"".join(chunks) == b'{"got": {"n": 2}, "client": "requests"}'
    assert len(chunks) > 1
    assert raw.json() == {"got": {"n": 3}, "client": "urllib3"}


def test_default_block_raises_before_anything_is_sent(http_server: HttpServer) -> None:
    """Each refusal is recorded as blocked, with the error it raised."""
    sink.install(default=BLOCK)
    try:
        with shadowguard.shadow() as scope:
            with pytest.raises(ShadowSideEffectBlocked) as session_refusal:
                requests.post(f"{http_server.url}/pay")
            with pytest.raises(ShadowSideEffectBlocked) as pool_refusal:
                urllib3.request("POST", f"{http_server.url}/pay")
    finally:
        sink.uninstall()
    assert http_server.count() == 0
    assert [s.blocked for s in scope.suppressed] == [True, True]
    assert [s.error for s in scope.suppressed] == [session_refusal.value, pool_refusal.value]
    assert [s.detail["client"] for s in scope.suppressed] == ["requests", "urllib3"]
    assert scope.suppressed[0].detail["operation"] == "send"


def test_a_session_created_before_install_is_guarded(http_server: HttpServer) -> None:
    """The patches are on the classes: sessions and pools that already exist are covered."""
    with requests.Session() as session, urllib3.PoolManager() as pool:
        session.get(f"{http_server.url}/read/warm")  # a pooled connection already open
        sink.install()
        try:
            with shadowguard.shadow():
                assert session.post(f"{http_server.url}/pay").headers[STUB_HEADER] == "1"
                assert pool.request("POST", f"{http_server.url}/pay").headers[STUB_HEADER] == "1"
        finally:
            sink.uninstall()
    assert [h.path for h in http_server.hits] == ["/read/warm"]


def test_guard_one_session(http_server: HttpServer) -> None:
    """A guarded session's own allow rule lets its read through install()'s BLOCK below it."""
    session = sink.guard(requests.Session(), allow=["http://127.0.0.1:*/feed"])
    sink.install(default=BLOCK)
    try:
        with shadowguard.shadow():
            assert session.post(f"{http_server.url}/pay").headers[STUB_HEADER] == "1"
            assert session.get(f"{http_server.url}/feed").json()["real"] is True
            with pytest.raises(ShadowSideEffectBlocked):
                requests.get(f"{http_server.url}/feed")
        session.post(f"{http_server.url}/pay")
    finally:
        sink.uninstall()
        session.close()
    assert [(h.method, h.path) for h in http_server.hits] == [("GET", "/feed"), ("POST", "/pay")]
    assert http_server.hits[0].headers[MARKER] == "1"


@pytest.mark.usefixtures("installed")
def test_get_adapter_still_exposes_the_real_adapter_in_shadow() -> None:
    with requests.Session() as session, shadowguard.shadow():
        adapter: Any = session.get_adapter("https://example.test/")
        real: Any = session.adapters["https://"]
        assert adapter.max_retries is real.max_retries


@pytest.mark.usefixtures("installed")
def test_responses_point_back_to_the_guarded_adapter(http_server: HttpServer) -> None:
    """Digest auth resends through ``response.connection``: it must be the guard."""
    with shadowguard.shadow():
        allowed = requests.get(f"{http_server.url}/read/1")
        resent = allowed.connection.send(allowed.request)
        stub = requests.post(f"{http_server.url}/pay")
        resent_stub = stub.connection.send(stub.request)
    assert resent.json()["real"] is True
    assert resent_stub.headers[STUB_HEADER] == "1"
    assert [h.path for h in http_server.hits] == ["/read/1", "/read/1"]


@pytest.mark.usefixtures("installed")
def test_threads_keep_shadow_only_with_propagate(http_server: HttpServer) -> None:
    check_threads_keep_shadow_only_with_propagate(requests.post, http_server)


@pytest.mark.usefixtures("installed")
def test_shadow_mode_without_a_scope_is_guarded(http_server: HttpServer) -> None:
    check_shadow_mode_without_a_scope_is_guarded(requests.post, http_server)


def test_primary_errors_are_unchanged(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/pay"
    retries = urllib3.Retry(0)
    with pytest.raises(requests.ConnectionError) as unguarded:
        requests.post(url)
    with pytest.raises(urllib3.exceptions.MaxRetryError) as raw_unguarded:
        urllib3.request("POST", url, retries=retries)
    sink.install()
    try:
        with pytest.raises(requests.ConnectionError) as guarded:
            requests.post(url)
        with pytest.raises(urllib3.exceptions.MaxRetryError) as raw_guarded:
            urllib3.request("POST", url, retries=retries)
    finally:
        sink.uninstall()
    assert type(guarded.value) is type(unguarded.value)
    assert type(raw_guarded.value.reason) is type(raw_unguarded.value.reason)


def test_uninstall_restores_everything(http_server: HttpServer) -> None:
    originals = (
        vars(requests.Session)["get_adapter"],
        vars(urllib3.HTTPConnectionPool)["urlopen"],
    )
    sink.install()
    sink.install()
    sink.uninstall()
    assert vars(requests.Session)["get_adapter"] is originals[0]
    assert vars(urllib3.HTTPConnectionPool)["urlopen"] is originals[1]
    with shadowguard.shadow():
        requests.post(f"{http_server.url}/pay")
    assert http_server.count() == 1


def test_top_level_install_passes_options(http_server: HttpServer) -> None:
    shadowguard.install("requests", requests={"allow": ["http://127.0.0.1:*/feed"]})
    try:
        with shadowguard.shadow():
            assert requests.get(f"{http_server.url}/feed").json()["real"] is True
            assert requests.post(f"{http_server.url}/feed").headers[STUB_HEADER] == "1"
    finally:
        shadowguard.uninstall()
    assert [h.method for h in http_server.hits] == ["GET"]


class PostingExporter(SpanExporter):
    """A span exporter that POSTs span names to the loopback server, like OTLP over HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url

    def export(self, spans: Any) -> SpanExportResult:
        requests.post(self.url, json=[span.name for span in spans])
        return SpanExportResult.SUCCESS


@pytest.mark.parametrize("telemetry_exports", [True, False])
def test_telemetry_exports_from_shadow_still_go_out(
    http_server: HttpServer, telemetry_exports: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK exports a span ended inside a shadow scope: it reaches the collector."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{http_server.url}/v1/traces")
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(PostingExporter(f"{http_server.url}/v1/traces"))
    )
    sink.install(telemetry_exports=telemetry_exports)
    try:
        with (
            shadowguard.shadow() as scope,
            provider.get_tracer("test").start_as_current_span("checkout"),
        ):
            requests.post(f"{http_server.url}/pay")
    finally:
        sink.uninstall()
        provider.shutdown()
    exported = [h for h in http_server.hits if h.path == "/v1/traces"]
    assert [h.path for h in http_server.hits if h.path == "/pay"] == []
    assert len(exported) == (1 if telemetry_exports else 0)
    assert scope.counts["http.request"] == (1 if telemetry_exports else 2)


@pytest.mark.usefixtures("installed")
def test_suppress_instrumentation_does_not_open_other_urls(
    http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """App code under OpenTelemetry's suppress key: a shadow POST is still stubbed."""
    with exporting_in_shadow(monkeypatch, f"{http_server.url}/otlp") as scope:
        stubbed = requests.post(f"{http_server.url}/charge", json={"amount": 1})
        pool = urllib3.PoolManager()
        raw = pool.request("POST", f"{http_server.url}/charge")
        exported = requests.post(f"{http_server.url}/otlp/v1/metrics", data=b"m")
    assert STUB_HEADER in stubbed.headers
    assert STUB_HEADER in raw.headers
    assert exported.status_code == 200
    assert scope.counts["http.request"] == 2
    with suppress_instrumentation():
        requests.post(f"{http_server.url}/charge", json={"amount": 2})  # primary
    assert [h.path for h in http_server.hits] == ["/otlp/v1/metrics", "/charge"]


def test_bytes_header_values_are_stubbed_and_seen_as_text(http_server: HttpServer) -> None:
    """botocore sends signed header values as bytes: the stub path takes them, as text."""
    seen: list[OutboundRequest] = []

    def respond(request: OutboundRequest) -> Reply:
        seen.append(request)
        return Reply(json={"ok": True})

    # urllib3 annotates str values, and takes bytes at run time (as botocore sends them).
    headers = urllib3.HTTPHeaderDict({"X-Amz-Date": b"20260101T000000Z"})  # type: ignore[arg-type]
    headers.add("X-Repeated", b"one")  # type: ignore[arg-type]
    headers.add("x-repeated", "two")
    with (
        installing(sink, stubs=[Stub(method="PUT", respond=respond)]),
        shadowguard.shadow(),
        urllib3.PoolManager() as pool,
    ):
        plain = pool.request("PUT", f"{http_server.url}/p", body=b"x", headers=headers)
        session = requests.put(
            f"{http_server.url}/s", data=b"x", headers={"X-Amz-Date": b"20260101T000000Z"}
        )
    assert plain.json() == session.json() == {"ok": True}
    assert http_server.count() == 0
    first, second = seen
    assert first.headers["X-Amz-Date"] == second.headers["X-Amz-Date"] == "20260101T000000Z"
    assert first.headers["X-Repeated"] == "one, two"
