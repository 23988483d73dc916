"""Outbound HTTP: the guard's cost on primary GETs, and a shadow stub against the network.

A loopback server in a child process answers keep-alive GETs. The unguarded clients
bypass the installed patches per instance (the original methods bound directly), so
guarded and unguarded calls run interleaved in the same process and the same run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks._harness import Harness
from shadowguard import shadow

_SERVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "12")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


@contextmanager
def _server() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/item"
    finally:
        process.terminate()
        process.wait(5)


@contextmanager
def _more_samples(h: Harness) -> Iterator[None]:
    # Network round trips are noisier than the core's microbenchmarks: sample longer.
    saved = h.sample_seconds, h.samples
    h.sample_seconds, h.samples = max(h.sample_seconds, 0.05), max(h.samples, 15)
    try:
        yield
    finally:
        h.sample_seconds, h.samples = saved


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


def run(h: Harness) -> None:
    with _server() as url, _more_samples(h):
        time.sleep(0.05)
        _bench_httpx(h, url)
        _bench_requests(h, url)
