"""The tricks the httpx and requests guards were tried with, against the http.client,
urllib, urllib3-connection and aiohttp guards on a loopback server: userinfo and
backslash hosts, redirects out of an allowed read, HEAD and OPTIONS to hosts no rule
allows, dot segments out of an allowed prefix. A trick may fail (a stub, an error); it
never reaches the server."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import urllib3.connection
import urllib3.util

import shadowguard
from shadowguard import is_stub
from shadowguard._outbound import Allow
from shadowguard.integrations import aiohttp as aiohttp_sink
from shadowguard.integrations import http_client as http_client_sink
from tests.integrations._support import installing
from tests.peers.http import HttpServer


def _urllib(method: str, url: str) -> Any:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as r:
            r.read()
            return r
    except urllib.error.HTTPError as exc:
        return exc.fp


def _http_client(method: str, url: str) -> Any:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=5)
    try:
        conn.request(method, url.split(parts.netloc, 1)[1] or "/")
        response = conn.getresponse()
        response.read()
        return response
    finally:
        conn.close()


def _urllib3(method: str, url: str) -> Any:
    parsed = urllib3.util.parse_url(url)
    conn = urllib3.connection.HTTPConnection(str(parsed.host), parsed.port, timeout=5)
    try:
        conn.request(method, parsed.request_uri)
        return conn.getresponse()
    finally:
        conn.close()


def _aiohttp(method: str, url: str) -> Any:
    async def call() -> Any:
        async with aiohttp.ClientSession() as session, session.request(method, url) as r:
            await r.read()
            return r

    return asyncio.run(call())


CLIENTS: dict[str, Callable[[str, str], Any]] = {
    "urllib": _urllib,
    "http_client": _http_client,
    "urllib3": _urllib3,
    "aiohttp": _aiohttp,
}


def _outcome(client: str, method: str, url: str) -> str:
    """``"real"`` (a server answered), ``"stub"``, or ``"error"`` (the client refused)."""
    try:
        response = CLIENTS[client](method, url)
    except Exception:
        return "error"
    return "stub" if is_stub(response) else "real"


@contextlib.contextmanager
def _guarded(*allow: Allow | str) -> Iterator[None]:
    with (
        installing(http_client_sink, allow=list(allow)),
        installing(aiohttp_sink, allow=list(allow)),
        shadowguard.shadow(),
    ):
        yield


def _port(server: HttpServer) -> int:
    return int(urlsplit(server.url).port or 0)


#: URLs to 127.0.0.1 that name the allowed ``localhost`` where a lax parser would read the host.
_BORROWING = {
    "userinfo": (
        "http://localhost@127.0.0.1:{port}/pay",
        "http://localhost:{port}@127.0.0.1:{port}/pay",
    ),
    "backslash": (
        "http://127.0.0.1:{port}\\@localhost/pay",
        "http://127.0.0.1:{port}\\@localhost:{port}/pay",
        "http://localhost\\@127.0.0.1:{port}/pay",
    ),
}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("trick", list(_BORROWING))
def test_userinfo_or_a_backslash_cannot_borrow_an_allowed_host(
    client: str, trick: str, http_server: HttpServer
) -> None:
    port = _port(http_server)
    with _guarded("localhost"):
        for url in _BORROWING[trick]:
            assert _outcome(client, "GET", url.format(port=port)) != "real", url
        assert http_server.count() == 0
        assert _outcome(client, "GET", f"http://localhost:{port}/read") == "real"
    assert [h.path for h in http_server.hits] == ["/read"]


def test_a_host_a_url_cannot_carry_is_not_read_as_another(http_server: HttpServer) -> None:
    """http.client takes the host as written: ``a@b`` must not be judged as ``b``."""
    port = _port(http_server)
    with _guarded("127.0.0.1"):
        for host in ("localhost@127.0.0.1", "x\\@127.0.0.1"):
            conn = http.client.HTTPConnection(host, port, timeout=5)
            conn.request("GET", "/pay")
            assert is_stub(conn.getresponse())
    assert http_server.count() == 0


@pytest.mark.parametrize("client", ["urllib", "aiohttp"])
def test_a_redirect_out_of_an_allowed_read_is_stubbed(client: str, http_server: HttpServer) -> None:
    """The allowed GET goes out; the hop it redirects to is judged, and stubbed."""
    with _guarded(Allow(url="http://127.0.0.1:*/read/*")):
        assert _outcome(client, "GET", f"{http_server.url}/read/redirect") == "stub"
        assert _outcome(client, "POST", f"{http_server.url}/read/redirect") == "stub"
    assert [(h.method, h.path) for h in http_server.hits] == [("GET", "/read/redirect")]


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
@pytest.mark.parametrize("client", CLIENTS)
def test_safe_methods_to_a_host_no_rule_allows_are_stubbed(
    client: str, method: str, http_server: HttpServer
) -> None:
    port = _port(http_server)
    with _guarded("localhost"):
        assert _outcome(client, method, f"http://127.0.0.1:{port}/admin") == "stub"
        assert http_server.count() == 0
        assert _outcome(client, method, f"http://localhost:{port}/admin") == "real"
    assert [(h.method, h.path) for h in http_server.hits] == [(method, "/admin")]


def test_options_star_to_a_host_no_rule_allows_is_stubbed(http_server: HttpServer) -> None:
    with _guarded("localhost"):
        conn = http.client.HTTPConnection("127.0.0.1", _port(http_server), timeout=5)
        conn.request("OPTIONS", "*")
        assert is_stub(conn.getresponse())
    assert http_server.count() == 0


@pytest.mark.parametrize(
    "path", ["/read/../admin", "/read/%2e%2e/admin", "/read/..%2fadmin", "/read/.%2E/admin"]
)
@pytest.mark.parametrize("client", CLIENTS)
def test_dot_segments_cannot_leave_an_allowed_prefix(
    client: str, path: str, http_server: HttpServer
) -> None:
    with _guarded(Allow(url="http://127.0.0.1:*/read/*")):
        assert _outcome(client, "GET", f"{http_server.url}{path}") != "real"
        assert _outcome(client, "GET", f"{http_server.url}/read/x") == "real"
    assert [h.path for h in http_server.hits] == ["/read/x"]
