"""Every HTTP client integration (httpx, httpx2, requests, urllib3, urllib through http.client,
aiohttp) against a loopback server:
exemption paths that a server resolves elsewhere, stubs told apart from Python, rules
that could never match refused at install, and faults inside the guard."""

from __future__ import annotations

import asyncio
import functools
import http.client
import importlib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
import requests
import urllib3

import shadowguard
from shadowguard import ConfigError
from shadowguard._outbound import Rules, is_stub
from shadowguard.integrations import load
from tests.integrations._http import suppress_instrumentation
from tests.peers.http import HttpServer

#: Each client: (integration name, ``post(url) -> response``, ``get(url) -> response``).
Client = tuple[str, Callable[[str], Any], Callable[[str], Any]]


def _urllib3_pool(method: str, url: str) -> Any:
    """urllib3's pool with the path as written (the pool does not resolve ``..``)."""
    parsed = urllib3.util.parse_url(url)
    pool = urllib3.HTTPConnectionPool(str(parsed.host), parsed.port)
    target = url.split(f":{parsed.port}", 1)[1]
    return pool.urlopen(method, target, body=b"x" if method == "POST" else None)


def _urllib(method: str, url: str) -> Any:
    """urlopen, the body read; an error status comes back as its response (HTTPError.fp)."""
    request = urllib.request.Request(url, data=b"x" if method == "POST" else None, method=method)
    response: Any
    try:
        response = urllib.request.urlopen(request)
    except urllib.error.HTTPError as exc:
        response = exc.fp
    response.body = response.read()
    return response


def _aiohttp(method: str, url: str) -> Any:
    async def call() -> Any:
        async with aiohttp.ClientSession() as session:
            data = b"x" if method == "POST" else None
            async with session.request(method, url, data=data) as response:
                kept: Any = response
                kept.body = await response.read()
                return kept

    return asyncio.run(call())


def _httpx(name: str) -> Client:
    lib = importlib.import_module(name)
    return name, functools.partial(lib.post, content=b"x"), lib.get


CLIENTS: dict[str, Client] = {
    "httpx": _httpx("httpx"),
    "httpx2": _httpx("httpx2"),
    "requests": ("requests", functools.partial(requests.post, data=b"x"), requests.get),
    "urllib3": (
        "requests",
        functools.partial(_urllib3_pool, "POST"),
        functools.partial(_urllib3_pool, "GET"),
    ),
    "urllib": (
        "http_client",
        functools.partial(_urllib, "POST"),
        functools.partial(_urllib, "GET"),
    ),
    "aiohttp": ("aiohttp", functools.partial(_aiohttp, "POST"), functools.partial(_aiohttp, "GET")),
}


@pytest.fixture(params=list(CLIENTS))
def client(request: pytest.FixtureRequest) -> Iterator[Client]:
    name, post, get = CLIENTS[request.param]
    sink = load(name)
    sink.install(allow=["http://127.0.0.1:*/read/*"])
    try:
        yield name, post, get
    finally:
        sink.uninstall()


@pytest.mark.parametrize(
    "path",
    [
        "/v1/traces/../../admin",
        "/v1/traces/%2e%2e/%2E%2E/admin",
        "/v1/traces//..//admin",
        "/v1/traces/..%2f..%2fadmin",
        "/v1/traces/.%2E/admin",
    ],
)
def test_an_otlp_path_that_resolves_elsewhere_is_not_exempt(
    client: Client, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Under OpenTelemetry's suppress key only the collector's own paths go out unjudged."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{http_server.url}/v1/traces")
    _, post, _ = client
    with shadowguard.shadow() as scope, suppress_instrumentation():
        stubbed = post(f"{http_server.url}{path}")
        exported = post(f"{http_server.url}/v1/traces")
    assert is_stub(stubbed)
    assert not is_stub(exported)
    assert [h.path for h in http_server.hits] == ["/v1/traces"]
    assert scope.counts["http.request"] == 1


def test_an_allowed_prefix_does_not_let_out_a_path_that_resolves_outside(
    client: Client, http_server: HttpServer
) -> None:
    _, _, get = client
    with shadowguard.shadow():
        assert is_stub(get(f"{http_server.url}/read/%2e%2e/admin"))
        assert is_stub(get(f"{http_server.url}/read/..%2fadmin"))
        assert not is_stub(get(f"{http_server.url}/read/x"))
    assert [h.path for h in http_server.hits] == ["/read/x"]


def test_stubs_are_recognisable_from_python(client: Client, http_server: HttpServer) -> None:
    """A cache around an outbound call can keep stubs out: is_stub() tells them apart."""
    _, post, get = client
    with shadowguard.shadow():
        stub = post(f"{http_server.url}/pay")
    real = get(f"{http_server.url}/read/1")
    assert is_stub(stub)
    assert not is_stub(real)
    if isinstance(stub, requests.Response):
        assert is_stub(stub.raw)
        assert not is_stub(real.raw)
    assert not is_stub(None)
    assert not is_stub({"x-shadowguard-stub": "1"})


def test_stub_kept_by_an_application_cache_is_told_apart(http_server: HttpServer) -> None:
    """The documented remedy: cache only what is not a stub."""
    cache: dict[str, Any] = {}

    def prices(url: str) -> Any:
        if url not in cache:
            response = requests.get(url)
            if not is_stub(response):
                cache[url] = response
            return response
        return cache[url]

    sink = load("requests")
    sink.install()
    try:
        with shadowguard.shadow():
            assert is_stub(prices(f"{http_server.url}/prices"))
        assert prices(f"{http_server.url}/prices").json()["real"] is True
    finally:
        sink.uninstall()
    assert len(http_server.hits) == 1


@pytest.mark.parametrize("name", ["httpx", "httpx2", "requests", "http_client", "aiohttp"])
@pytest.mark.parametrize("allow", ["api.test/v1", "api.test:8443/x", "api.test:8443", ".api.test"])
def test_a_host_rule_that_never_matches_fails_install(name: str, allow: str) -> None:
    """A string without a scheme is a host rule: one with a path or port never matches."""
    sink = load(name)
    with pytest.raises(ConfigError, match="accepted forms"):
        sink.install(allow=[allow])
    with pytest.raises(ConfigError, match="accepted forms"):
        shadowguard.install(name, **{name: {"allow": [allow]}})
    assert not sink._patches.installed


ServerCall = Callable[[str], Any]


def _outcome(call: ServerCall, url: str) -> tuple[str, object]:
    """What a call gives its caller: the response's status and body, or the exception."""
    try:
        response = call(url)
    except Exception as exc:
        return "raised", type(exc)
    if isinstance(response, (http.client.HTTPResponse, aiohttp.ClientResponse)):
        data = getattr(response, "body")  # noqa: B009 (set by the client's call above)
    elif isinstance(response, urllib3.BaseHTTPResponse):
        data = response.data
    else:
        data = response.content
    return str(response.status_code if hasattr(response, "status_code") else response.status), data


@pytest.mark.parametrize("internal", ["decide", "answer"])
def test_a_fault_inside_the_guard_fails_closed_and_leaves_primary_as_it_is(
    client: Client,
    http_server: HttpServer,
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
    internal: str,
) -> None:
    """Shadow: the guard's own error surfaces and nothing is sent. Primary: the same
    result, or the same exception, as without the guard."""
    _, post, get = client
    urls = [f"{http_server.url}/status/503", f"http://127.0.0.1:{closed_port}/x"]

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("fault inside the guard")

    monkeypatch.setattr(Rules, internal, broken)
    with shadowguard.shadow():
        with pytest.raises(RuntimeError, match="fault"):
            post(f"{http_server.url}/pay")
        if internal == "decide":
            with pytest.raises(RuntimeError, match="fault"):
                get(f"{http_server.url}/read/1")
    assert http_server.count() == 0
    guarded = [_outcome(post, url) for url in urls]
    monkeypatch.undo()
    sink_name = client[0]
    load(sink_name).uninstall()
    assert guarded == [_outcome(post, url) for url in urls]
