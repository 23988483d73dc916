"""Outbound HTTP: the guard's cost on primary GETs, and a shadow stub against the network.

A loopback server in a child process answers keep-alive GETs. The unguarded clients
bypass the installed patches per instance (the original methods bound directly, or on a
subclass), so guarded and unguarded calls run interleaved in the same process and the
same run.
"""

from __future__ import annotations

import asyncio
import http.client
import time
import types
import warnings
from typing import Any

from benchmarks._harness import Harness
from benchmarks._loopback import child_server, http_server
from shadowguard import shadow

_SERVER = http_server(
    """
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "12")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')
    """
)


def _bench_httpx(h: Harness, url: str) -> None:
    import httpx

    from shadowguard.integrations import httpx as sink

    original = vars(httpx.Client)["_transport_for_url"]
    sink.install()
    try:
        plain, guarded = httpx.Client(), httpx.Client()
        # Bound to the unpatched method: exactly the path without shadowguard.
        vars(plain)["_transport_for_url"] = types.MethodType(original, plain)
        _compare_primary_get(h, "httpx", plain, guarded, url)
        mock = httpx.MockTransport(lambda request: httpx.Response(200))
        plain_mock, guarded_mock = httpx.Client(transport=mock), httpx.Client(transport=mock)
        vars(plain_mock)["_transport_for_url"] = types.MethodType(original, plain_mock)
        h.compare(
            "httpx GET MockTransport (no network), primary",
            lambda: plain_mock.get("http://bench.test/"),
            lambda: guarded_mock.get("http://bench.test/"),
        )
        target = httpx.URL(url)
        h.compare(
            "httpx transport lookup (the patched seam), primary",
            lambda: plain._transport_for_url(target),
            lambda: guarded._transport_for_url(target),
            target_added_ns=300,
        )
        _compare_stubbed_post(h, "httpx", plain, guarded, url)
        for client in (plain, guarded, plain_mock, guarded_mock):
            client.close()
    finally:
        sink.uninstall()


def _compare_primary_get(h: Harness, library: str, plain: Any, guarded: Any, url: str) -> None:
    """A primary GET over loopback, guarded client against the unguarded one."""
    plain.get(url)  # both connections open before timing
    guarded.get(url)
    h.compare(
        f"{library} GET loopback, primary: guarded vs unguarded",
        lambda: plain.get(url),
        lambda: guarded.get(url),
        target_ratio=1.03,
    )


def _compare_stubbed_post(h: Harness, library: str, plain: Any, guarded: Any, url: str) -> None:
    """A shadow POST answered by the stub against a real primary GET, both on ``library``."""

    def stubbed() -> Any:
        with shadow():
            return guarded.post(url)

    h.compare(
        f"{library}: shadow stubbed POST vs real primary GET",
        lambda: plain.get(url),
        stubbed,
        target_ratio=0.9,
    )


def _bench_requests(h: Harness, url: str) -> None:
    import requests
    import urllib3

    from shadowguard.integrations import requests as sink

    original_get_adapter = vars(requests.Session)["get_adapter"]
    original_urlopen = vars(urllib3.HTTPConnectionPool)["urlopen"]
    sink.install()
    try:

        class UnguardedPool(urllib3.HTTPConnectionPool):
            urlopen = original_urlopen

        plain, guarded = requests.Session(), requests.Session()
        vars(plain)["get_adapter"] = types.MethodType(original_get_adapter, plain)
        for adapter in plain.adapters.values():
            pools: Any = adapter.poolmanager.pool_classes_by_scheme  # type: ignore[attr-defined]
            pools["http"] = UnguardedPool
        _compare_primary_get(h, "requests", plain, guarded, url)
        _compare_stubbed_post(h, "requests", plain, guarded, url)
        plain.close()
        guarded.close()
    finally:
        sink.uninstall()


class _Connection:
    """``get``/``post`` over one kept ``http.client`` connection of class ``cls``."""

    def __init__(self, cls: type[http.client.HTTPConnection], url: str) -> None:
        host, _, rest = url.removeprefix("http://").partition("/")
        self.conn, self.path = cls(host), f"/{rest}"

    def _send(self, method: str) -> bytes:
        self.conn.request(method, self.path)
        return self.conn.getresponse().read()

    def get(self, url: str) -> bytes:
        return self._send("GET")

    def post(self, url: str) -> bytes:
        return self._send("POST")


def _bench_http_client(h: Harness, url: str) -> None:
    from shadowguard.integrations import http_client as sink

    methods = ("endheaders", "send", "getresponse")
    originals = {name: vars(http.client.HTTPConnection)[name] for name in methods}
    sink.install()
    try:
        # The original methods on a subclass: exactly the path without shadowguard.
        unguarded = type("UnguardedConnection", (http.client.HTTPConnection,), originals)
        plain, guarded = _Connection(unguarded, url), _Connection(http.client.HTTPConnection, url)
        _compare_primary_get(h, "http.client", plain, guarded, url)
        _compare_stubbed_post(h, "http.client", plain, guarded, url)
        plain.conn.close()
        guarded.conn.close()
    finally:
        sink.uninstall()


class _Session:
    """``get``/``post`` of one kept aiohttp session, each call run on a kept event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, cls: type[Any]) -> None:
        async def make() -> Any:
            return cls()

        self.loop = loop
        self.session = loop.run_until_complete(make())

    async def _send(self, method: str, url: str) -> bytes:
        async with self.session.request(method, url) as response:
            return await response.read()  # type: ignore[no-any-return]

    def get(self, url: str) -> bytes:
        return self.loop.run_until_complete(self._send("GET", url))

    def post(self, url: str) -> bytes:
        return self.loop.run_until_complete(self._send("POST", url))


def _bench_aiohttp(h: Harness, url: str) -> None:
    import aiohttp

    from shadowguard.integrations import aiohttp as sink

    original = vars(aiohttp.ClientSession)["_request"]
    sink.install()
    loop = asyncio.new_event_loop()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # aiohttp discourages subclasses
            unguarded = type("UnguardedSession", (aiohttp.ClientSession,), {"_request": original})
        plain, guarded = _Session(loop, unguarded), _Session(loop, aiohttp.ClientSession)
        _compare_primary_get(h, "aiohttp", plain, guarded, url)
        _compare_stubbed_post(h, "aiohttp", plain, guarded, url)
        for kept in (plain, guarded):
            loop.run_until_complete(kept.session.close())
    finally:
        loop.close()
        sink.uninstall()


def run(h: Harness) -> None:
    with child_server(_SERVER) as port, h.longer_samples():
        url = f"http://127.0.0.1:{port}/item"
        time.sleep(0.05)
        _bench_httpx(h, url)
        _bench_requests(h, url)
        _bench_http_client(h, url)
        _bench_aiohttp(h, url)
