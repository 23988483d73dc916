"""requests over urllib3 over http.client, each with its guard installed: a shadow request is
judged once, by the rules of the client the application called, and recorded once."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import aiohttp
import requests
import requests.adapters
import urllib3

import shadowguard
from shadowguard import is_stub
from shadowguard._outbound import BLOCK
from shadowguard.integrations import aiohttp as aiohttp_sink
from shadowguard.integrations import http_client as http_client_sink
from shadowguard.integrations import requests as requests_sink
from tests.integrations._http import requests_response
from tests.integrations._support import installing
from tests.peers.http import HttpServer

READS = ["http://127.0.0.1:*/read*"]


def test_a_read_requests_lets_out_is_not_judged_again_below(http_server: HttpServer) -> None:
    """http.client refuses everything here: what requests and urllib3 let out still goes."""
    url = http_server.url
    with (
        installing(requests_sink, allow=READS),
        installing(http_client_sink, default=BLOCK),
        shadowguard.shadow() as scope,
    ):
        got = requests.get(f"{url}/read/1?q=a b")
        posted = requests.post(f"{url}/pay")
        raw = urllib3.request("GET", f"{url}/read/raw")
        redirected = urllib3.request("GET", f"{url}/read/redirect")
    assert got.json()["real"] is True
    assert raw.json()["real"] is True
    assert is_stub(posted)
    assert is_stub(redirected)  # urllib3 followed to /landing: judged by the pool's guard
    assert [h.path for h in http_server.hits] == ["/read/1?q=a%20b", "/read/raw", "/read/redirect"]
    assert [s.detail["client"] for s in scope.suppressed] == ["requests", "urllib3"]
    assert [s.target.rsplit("/", 1)[1] for s in scope.suppressed] == ["pay", "landing"]


def test_a_session_with_rules_of_its_own_is_judged_by_them(http_server: HttpServer) -> None:
    session = requests_sink.guard(requests.Session(), allow=["http://127.0.0.1:*/feed"])
    with (
        installing(requests_sink, default=BLOCK),
        installing(http_client_sink, default=BLOCK),
        shadowguard.shadow() as scope,
    ):
        assert session.get(f"{http_server.url}/feed").json()["real"] is True
    session.close()
    assert [h.path for h in http_server.hits] == ["/feed"]
    assert scope.suppressed == []


class UrllibAdapter(requests.adapters.BaseAdapter):
    """A requests adapter that sends with urllib, and makes a call of its own first."""

    def send(self, request: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        base = request.url.split("/read", 1)[0]
        urllib.request.urlopen(urllib.request.Request(f"{base}/audit", data=b"x")).read()
        raw = urllib.request.urlopen(urllib.request.Request(request.url, method=request.method))
        return requests_response(request, raw)

    def close(self) -> None:
        pass


def test_only_the_request_judged_above_passes_below(http_server: HttpServer) -> None:
    """An adapter's own call under an allowed read is judged by the http.client guard."""
    with (
        installing(requests_sink, allow=READS),
        installing(http_client_sink),
        requests.Session() as session,
    ):
        session.mount("http://127.0.0.1", UrllibAdapter())
        with shadowguard.shadow() as scope:
            got = session.get(f"{http_server.url}/read/x")
    assert got.json()["real"] is True
    assert [h.path for h in http_server.hits] == ["/read/x"]
    assert [(s.detail["client"], s.detail["method"]) for s in scope.suppressed] == [
        ("http.client", "POST")
    ]


def test_http_client_alone_guards_requests_and_urllib3(http_server: HttpServer) -> None:
    """Without their own guard, requests and urllib3 are caught at http.client, once."""
    with installing(http_client_sink), shadowguard.shadow() as scope:
        posted = requests.post(f"{http_server.url}/pay", data=b"x")
        pooled = urllib3.PoolManager().request("PUT", f"{http_server.url}/pay")
    assert http_server.count() == 0
    assert is_stub(posted.raw)
    assert posted.json() == {}
    assert is_stub(pooled)
    assert scope.counts["http.request"] == 2
    assert {s.detail["client"] for s in scope.suppressed} == {"http.client"}


def test_aiohttp_is_judged_by_its_own_guard_once(http_server: HttpServer) -> None:
    async def post() -> Any:
        async with aiohttp.ClientSession() as session, session.post(http_server.url) as r:
            return r

    with (
        installing(http_client_sink, default=BLOCK),
        installing(aiohttp_sink),
        shadowguard.shadow() as scope,
    ):
        assert is_stub(asyncio.run(post()))
    assert http_server.count() == 0
    assert [s.detail["client"] for s in scope.suppressed] == ["aiohttp"]
