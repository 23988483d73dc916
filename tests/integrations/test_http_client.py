"""http.client, urllib.request and urllib3's bare connection against a real loopback server:
shadow stubs, allowed reads, refusals, primary untouched."""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import socketserver
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import urllib3.connection

import shadowguard
from shadowguard import ShadowSideEffectBlocked, is_stub
from shadowguard._outbound import BLOCK, OutboundRequest, Reply, Stub
from shadowguard.integrations import http_client as sink
from tests.integrations._http import (
    ALLOW_READS,
    MARKER,
    check_sent_as_primary,
    check_shadow_mode_without_a_scope_is_guarded,
    check_stubbed_in_shadow,
    check_threads_keep_shadow_only_with_propagate,
    exporting_in_shadow,
)
from tests.integrations._support import installing
from tests.peers.http import HttpServer

SINK = "http_client"
SINK_OPTIONS = {"allow": ALLOW_READS}


def _target(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.netloc, parts.path + (f"?{parts.query}" if parts.query else "")


@contextlib.contextmanager
def _connection(url: str) -> Iterator[tuple[http.client.HTTPConnection, str]]:
    """A connection to ``url``'s host and the path to ask it for; closed after the block."""
    netloc, path = _target(url)
    conn = http.client.HTTPConnection(netloc)
    try:
        yield conn, path
    finally:
        conn.close()


def _urlopen(url: str) -> tuple[Any, bytes]:
    request = urllib.request.Request(url, data=b'{"amount": 1}', method="POST")
    with urllib.request.urlopen(request) as response:
        return response, response.read()


def _request(url: str) -> tuple[Any, bytes]:
    with _connection(url) as (conn, path):
        conn.request("PUT", path, body=b"x", headers={"content-type": "text/plain"})
        response = conn.getresponse()
        return response, response.read()


def _by_hand(url: str) -> tuple[Any, bytes]:
    """putrequest, putheader, endheaders and send, as a low-level caller writes them."""
    with _connection(url) as (conn, path):
        conn.putrequest("POST", path)
        conn.putheader("Content-Length", "2")
        conn.endheaders()
        conn.send(b"ab")
        response = conn.getresponse()
        return response, response.read()


def _chunked(url: str) -> tuple[Any, bytes]:
    with _connection(url) as (conn, path):
        conn.request("PATCH", path, body=iter([b"a", b"b"]))
        response = conn.getresponse()
        return response, response.read()


def _urllib3_connection(url: str) -> tuple[Any, bytes]:
    """urllib3's connection without a pool (the pool has a guard of its own)."""
    netloc, path = _target(url)
    host, _, port = netloc.partition(":")
    conn = urllib3.connection.HTTPConnection(host, int(port))
    try:
        conn.request("DELETE", path, body=b"x")
        response = conn.getresponse()
        return response, response.data
    finally:
        conn.close()


FORMS: dict[str, Callable[[str], tuple[Any, bytes]]] = {
    "urlopen": _urlopen,
    "request": _request,
    "by_hand": _by_hand,
    "chunked": _chunked,
    "urllib3_connection": _urllib3_connection,
}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.usefixtures("installed")
def test_shadow_requests_never_reach_the_server(http_server: HttpServer, form: str) -> None:
    """Every form: 0 hits in shadow, a stub; 1 hit as primary, without any marker."""
    with shadowguard.shadow() as scope:
        response, body = FORMS[form](f"{http_server.url}/pay?key=sk_live_1")
    check_stubbed_in_shadow(http_server, scope, response, body, "http.client")
    response, body = FORMS[form](f"{http_server.url}/pay")
    check_sent_as_primary(http_server, response, body)


@pytest.mark.usefixtures("installed")
def test_a_stubbed_request_never_connects(closed_port: int) -> None:
    """Nothing listens on the port: a stub comes back because no socket was opened."""
    url = f"https://127.0.0.1:{closed_port}/pay"
    with shadowguard.shadow():
        response, _ = _urlopen(url)
        conn = http.client.HTTPSConnection("127.0.0.1", closed_port)
        conn.request("POST", "/pay", body=b"x")
        stub = conn.getresponse()
        assert conn.sock is None
    assert is_stub(response)
    assert stub.read() == b"{}"
    with pytest.raises(urllib.error.URLError):
        _urlopen(url)


@pytest.mark.usefixtures("installed")
def test_allowed_reads_go_out_with_the_marker(http_server: HttpServer) -> None:
    netloc, _ = _target(http_server.url)
    with shadowguard.shadow() as scope:
        with urllib.request.urlopen(f"{http_server.url}/read/items?page=2") as got:
            assert json.loads(got.read())["real"] is True
        conn = http.client.HTTPConnection(netloc)
        conn.request("HEAD", "/read/head", headers={MARKER: "forged"})
        assert conn.getresponse().status == 200
        raw = urllib3.connection.HTTPConnection(netloc)
        raw.request("GET", "/read/raw")
        assert raw.getresponse().json()["real"] is True
        posted, _ = _urlopen(f"{http_server.url}/read/items")
    conn.close()
    raw.close()
    assert is_stub(posted)
    assert [(h.method, h.path, h.headers[MARKER]) for h in http_server.hits] == [
        ("GET", "/read/items?page=2", "1"),
        ("HEAD", "/read/head", "1"),
        ("GET", "/read/raw", "1"),
    ]
    assert scope.counts["http.request"] == 1


def test_stubs_behave_like_real_responses(http_server: HttpServer) -> None:
    """urlopen raises HTTPError for a 4xx stub; a respond() callable sees the body sent."""

    def echo(request: OutboundRequest) -> Reply:
        return Reply(201, headers={"x-echo": "1"}, json={"got": request.json()})

    sink.install(
        stubs=[
            Stub(method="POST", url="http://127.0.0.1:*/declined", status=402, json={"e": 1}),
            Stub(method=["PUT", "PATCH"], url="http://127.0.0.1:*/echo", respond=echo),
        ]
    )
    netloc, _ = _target(http_server.url)
    try:
        with shadowguard.shadow():
            with pytest.raises(urllib.error.HTTPError) as declined:
                _urlopen(f"{http_server.url}/declined")
            put = urllib.request.Request(f"{http_server.url}/echo", data=b'{"n": 1}', method="PUT")
            with urllib.request.urlopen(put) as echoed:
                assert (echoed.status, echoed.reason) == (201, "Created")
                assert echoed.getheader("x-echo") == "1"
                assert echoed.getheader("content-type") == "application/json"
                assert echoed.url == f"{http_server.url}/echo"
                first = echoed.read(4)
                rest = echoed.read()
            conn = http.client.HTTPConnection(netloc)
            conn.request("PATCH", "/echo", body=iter([b'{"n":', b" 2}"]))
            chunked = conn.getresponse().read()
            raw = urllib3.connection.HTTPConnection(netloc)
            raw.request("PUT", "/echo", body=b'{"n": 3}', preload_content=False)
            streamed = list(raw.getresponse().stream(4))
    finally:
        sink.uninstall()
    assert http_server.count() == 0
    assert declined.value.code == 402
    assert json.loads(declined.value.read()) == {"e": 1}
    assert first + rest == b'{"got": {"n": 1}}'
    assert json.loads(chunked) == {"got": {"n": 2}}
    assert b"".join(streamed) == b'{"got": {"n": 3}}'
    assert len(streamed) > 1


def test_default_block_raises_before_anything_is_sent(http_server: HttpServer) -> None:
    """The refused request leaves the kept connection usable for the primary."""
    netloc, _ = _target(http_server.url)
    conn = http.client.HTTPConnection(netloc)
    sink.install(default=BLOCK)
    try:
        with shadowguard.shadow() as scope:
            with pytest.raises(ShadowSideEffectBlocked) as refused:
                _urlopen(f"{http_server.url}/pay")
            with pytest.raises(ShadowSideEffectBlocked):
                conn.request("POST", "/pay", body=b"x")
        conn.request("POST", "/pay", body=b"x")
        assert json.loads(conn.getresponse().read())["real"] is True
    finally:
        sink.uninstall()
        conn.close()
    assert [h.path for h in http_server.hits] == ["/pay"]
    assert [s.blocked for s in scope.suppressed] == [True, True]
    assert scope.suppressed[0].error is refused.value
    assert scope.suppressed[0].detail["operation"] == "send"


def test_a_kept_connection_interleaves_primary_and_shadow(http_server: HttpServer) -> None:
    """A keep-alive connection opened before install(): primary, stub, primary on one socket."""
    netloc, _ = _target(http_server.url)
    conn = http.client.HTTPConnection(netloc)
    conn.request("GET", "/warm")
    conn.getresponse().read()
    sock = conn.sock
    sink.install()
    try:
        with shadowguard.shadow():
            conn.request("POST", "/pay", body=b"x")
            stub = conn.getresponse()
            assert stub.read() == b"{}"
        conn.request("POST", "/after")
        after = conn.getresponse().read()
        assert conn.sock is sock
    finally:
        sink.uninstall()
        conn.close()
    assert json.loads(after)["path"] == "/after"
    assert [h.path for h in http_server.hits] == ["/warm", "/after"]


@pytest.mark.usefixtures("installed")
def test_bytes_written_by_hand_are_refused(http_server: HttpServer) -> None:
    """send() outside a judged request cannot smuggle a request past the guard."""
    netloc, _ = _target(http_server.url)
    raw = b"POST /pay HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    conn = http.client.HTTPConnection(netloc)
    try:
        with shadowguard.shadow() as scope:
            with pytest.raises(ShadowSideEffectBlocked, match="outside an HTTP request"):
                conn.send(raw)
            conn.connect()
            with pytest.raises(ShadowSideEffectBlocked):
                conn.send(raw)
            conn.request("GET", "/read/ok")
            conn.getresponse().read()
            with pytest.raises(ShadowSideEffectBlocked):
                conn.send(raw)  # the allowed request is over
    finally:
        conn.close()
    assert [h.path for h in http_server.hits] == ["/read/ok"]
    assert [s.blocked for s in scope.suppressed] == [True, True, True]


@pytest.mark.usefixtures("installed")
def test_threads_keep_shadow_only_with_propagate(http_server: HttpServer) -> None:
    check_threads_keep_shadow_only_with_propagate(lambda url: _urlopen(url)[0], http_server)


@pytest.mark.usefixtures("installed")
def test_shadow_mode_without_a_scope_is_guarded(http_server: HttpServer) -> None:
    check_shadow_mode_without_a_scope_is_guarded(lambda url: _urlopen(url)[0], http_server)


def _failure(call: Callable[[], Any]) -> tuple[type, object]:
    try:
        call()
    except Exception as exc:
        reason = getattr(exc, "reason", None)
        return type(exc), type(reason)
    raise AssertionError("the call did not fail")


def test_primary_errors_are_unchanged(closed_port: int) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: _urlopen(f"http://127.0.0.1:{closed_port}/pay"),
        lambda: _request(f"http://127.0.0.1:{closed_port}/pay"),
        lambda: _urllib3_connection(f"http://127.0.0.1:{closed_port}/pay"),
    ]
    unguarded = [_failure(call) for call in calls]
    sink.install()
    try:
        guarded = [_failure(call) for call in calls]
    finally:
        sink.uninstall()
    assert guarded == unguarded


@pytest.fixture
def originals() -> dict[str, Any]:
    found = {
        name: vars(http.client.HTTPConnection)[name]
        for name in ("endheaders", "send", "getresponse")
    }
    found["urllib3"] = vars(urllib3.connection.HTTPConnection)["getresponse"]
    return found


def test_uninstall_restores_everything(http_server: HttpServer, originals: dict[str, Any]) -> None:
    sink.install()
    sink.install()
    assert vars(http.client.HTTPConnection)["send"] is not originals["send"]
    sink.uninstall()
    for name in ("endheaders", "send", "getresponse"):
        assert vars(http.client.HTTPConnection)[name] is originals[name]
    assert vars(urllib3.connection.HTTPConnection)["getresponse"] is originals["urllib3"]
    with shadowguard.shadow():
        _urlopen(f"{http_server.url}/pay")
    assert http_server.count() == 1


def test_top_level_install_passes_options(http_server: HttpServer) -> None:
    shadowguard.install("http_client", http_client={"allow": ["http://127.0.0.1:*/feed"]})
    try:
        with shadowguard.shadow():
            with urllib.request.urlopen(f"{http_server.url}/feed") as got:
                assert not is_stub(got)
            assert is_stub(_urlopen(f"{http_server.url}/feed")[0])
    finally:
        shadowguard.uninstall()
    assert [h.method for h in http_server.hits] == ["GET"]


@pytest.mark.usefixtures("installed")
def test_telemetry_exports_go_out_and_nothing_else(
    http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under OpenTelemetry's suppress key only the configured OTLP endpoint goes out."""
    with exporting_in_shadow(monkeypatch, f"{http_server.url}/otlp") as scope:
        stubbed, _ = _urlopen(f"{http_server.url}/charge")
        exported, _ = _urlopen(f"{http_server.url}/otlp/v1/metrics")
    assert is_stub(stubbed)
    assert not is_stub(exported)
    assert scope.counts["http.request"] == 1
    assert [h.path for h in http_server.hits] == ["/otlp/v1/metrics"]


def test_a_redirecting_stub_is_followed_and_the_next_hop_judged(http_server: HttpServer) -> None:
    """urlopen follows a 303 stub with a GET, which an allow rule lets out."""
    go = Stub(
        method="POST", url="http://127.0.0.1:*/go", status=303, headers={"location": "/read/next"}
    )
    with (
        installing(sink, allow=["http://127.0.0.1:*/read/*"], stubs=[go]),
        shadowguard.shadow() as scope,
    ):
        landed, body = _urlopen(f"{http_server.url}/go")
    assert not is_stub(landed)
    assert json.loads(body)["path"] == "/read/next"
    assert [(h.method, h.path) for h in http_server.hits] == [("GET", "/read/next")]
    assert scope.suppressed[0].detail["status"] == 303


class _TunnelProxy(socketserver.ThreadingTCPServer):
    """A CONNECT proxy on loopback: answers 200 and relays bytes, recording each CONNECT."""

    daemon_threads = True
    connects: list[str]


class _TunnelHandler(socketserver.BaseRequestHandler):
    server: _TunnelProxy

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        self.server.connects.append(line)
        host, _, port = line.split(" ")[1].rpartition(":")
        with socket.create_connection((host, int(port))) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            peers = {self.request: upstream, upstream: self.request}
            while True:
                readable, _, _ = select.select(list(peers), [], [], 5)
                data = readable[0].recv(65536) if readable else b""
                if not data:
                    return
                peers[readable[0]].sendall(data)


@pytest.fixture
def tunnel_proxy() -> Iterator[_TunnelProxy]:
    proxy = _TunnelProxy(("127.0.0.1", 0), _TunnelHandler)
    proxy.connects = []
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(5)


@pytest.mark.usefixtures("installed")
def test_a_proxy_tunnel_opens_only_for_an_allowed_request(
    http_server: HttpServer, tunnel_proxy: _TunnelProxy
) -> None:
    """The tunnel's target is judged; a stub never reaches the proxy; CONNECT alone passes."""
    server_port = int(urlsplit(http_server.url).port or 0)
    proxy_port = tunnel_proxy.server_address[1]
    connect = f"CONNECT 127.0.0.1:{server_port}"  # HTTP/1.0 before Python 3.12, then 1.1
    with shadowguard.shadow() as scope:
        conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=5)
        conn.set_tunnel("127.0.0.1", server_port)
        conn.request("POST", "/pay", body=b"x")
        assert conn.getresponse().read() == b"{}"
        assert tunnel_proxy.connects == []
        conn.request("GET", "/read/tunnelled")
        assert json.loads(conn.getresponse().read())["path"] == "/read/tunnelled"
        conn.close()
        bare = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=5)
        bare.set_tunnel("127.0.0.1", server_port)
        bare.connect()  # the CONNECT goes out; nothing more does
        with pytest.raises(ShadowSideEffectBlocked):
            bare.send(b"POST /pay HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        bare.close()
    assert [line.rsplit(" ", 1)[0] for line in tunnel_proxy.connects] == [connect, connect]
    assert [h.path for h in http_server.hits] == ["/read/tunnelled"]
    assert scope.suppressed[0].target.endswith(f"127.0.0.1:{server_port}/pay")
