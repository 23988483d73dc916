"""WSGI admission control on a real Flask app served by werkzeug's threaded server."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask, Response, stream_with_context
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shadowguard.middleware import _admission
from shadowguard.middleware.flask import ShadowGuard
from tests.middleware._shed import fresh_gate, new_sheds, shed_counts


@pytest.fixture(autouse=True)
def _gate(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_gate(monkeypatch)


class Probe:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.started = 0
        self.release = threading.Event()

    def hold(self) -> None:
        with self.lock:
            self.started += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            assert self.release.wait(10)
        finally:
            with self.lock:
                self.running -= 1


def build(probe: Probe, **options: Any) -> Flask:
    app = Flask(__name__)

    @app.get("/slow")
    def slow() -> str:
        probe.hold()
        return "ok"

    @app.get("/fast")
    def fast() -> str:
        return "ok"

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    @app.get("/stream")
    def stream() -> Response:
        def body() -> Iterator[str]:
            yield "a"
            yield "b"

        return Response(stream_with_context(body()))

    ShadowGuard(app, **options)
    return app


def get(url: str, shadow: bool, headers: dict[str, str] | None = None) -> tuple[int, str | None]:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    if shadow:
        request.add_header("x-shadow-request", "1")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.headers.get("x-shadowguard-shed")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("x-shadowguard-shed")


def until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_burst_of_ten_times_the_limit_on_threads(
    wsgi_server: Callable[[Any], str], metric_reader: InMemoryMetricReader
) -> None:
    """30 slow shadow requests at limit 3: 3 run, 27 get 503 at once; primaries all served."""
    probe = Probe()
    base = wsgi_server(build(probe, max_concurrent_shadow=3))
    before = shed_counts(metric_reader)
    with ThreadPoolExecutor(max_workers=40) as pool:
        shadows = [pool.submit(get, f"{base}/slow", True) for _ in range(30)]
        until(lambda: sum(f.done() for f in shadows) == 27 and probe.started == 3)
        assert {f.result() for f in shadows if f.done()} == {(503, "limit")}
        primaries = [pool.submit(get, f"{base}/fast", False) for _ in range(20)]
        assert [f.result() for f in primaries] == [(200, None)] * 20
        assert _admission.running() == 3
        probe.release.set()
        results = [f.result() for f in shadows]
    assert sorted(results, key=str) == [(200, None)] * 3 + [(503, "limit")] * 27
    assert probe.peak == 3
    assert probe.started == 3
    # werkzeug closes each body (and so frees its slot) just after the client got it.
    until(lambda: _admission.running() == 0, timeout=30)
    assert new_sheds(metric_reader, before) == {"limit": 27}


def test_limit_one_primary_and_shadow_on_the_same_slow_route(
    wsgi_server: Callable[[Any], str],
) -> None:
    probe = Probe()
    base = wsgi_server(build(probe, max_concurrent_shadow=1))
    with ThreadPoolExecutor(max_workers=4) as pool:
        shadow = pool.submit(get, f"{base}/slow", True)
        primary = pool.submit(get, f"{base}/slow", False)
        until(lambda: probe.started == 2)
        assert get(f"{base}/fast", True) == (503, "limit")
        assert get(f"{base}/fast", False) == (200, None)
        probe.release.set()
        assert shadow.result() == (200, None)
        assert primary.result() == (200, None)


def test_old_shadow_requests_are_refused(wsgi_server: Callable[[Any], str]) -> None:
    probe = Probe()
    base = wsgi_server(build(probe, shadow_budget_seconds=2))
    old = {"x-request-start": f"t={time.time() - 3:.3f}"}
    assert get(f"{base}/slow", True, old) == (503, "budget")
    assert probe.started == 0
    assert get(f"{base}/fast", False, old) == (200, None)
    assert get(f"{base}/fast", True, {"x-request-start": f"t={time.time():.3f}"}) == (200, None)


def test_slot_released_after_an_exception_and_held_while_streaming() -> None:
    app = build(Probe(), max_concurrent_shadow=1)
    client = app.test_client()
    with client.get("/boom", headers={"x-shadow-request": "1"}) as failed:
        assert failed.status_code == 500
    assert _admission.running() == 0  # closed like a server closes the body

    response = client.get("/stream", headers={"x-shadow-request": "1"}, buffered=False)
    body = iter(response.response)
    assert next(body) == b"a"
    assert _admission.running() == 1  # the body is still being served
    with client.get("/fast", headers={"x-shadow-request": "1"}) as shed:
        assert shed.status_code == 503
    with client.get("/fast") as primary:
        assert primary.status_code == 200
    response.close()
    assert _admission.running() == 0
    assert client.get("/fast", headers={"x-shadow-request": "1"}).status_code == 200
