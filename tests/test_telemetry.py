"""Telemetry tags shadow spans and counts suppressions, and never raises into the app."""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from opentelemetry import trace

from shadowguard import current_scope, record_suppression, shadow, telemetry
from shadowguard.contract import Action, record
from shadowguard.middleware import _wsgi_response
from shadowguard.middleware import asgi as asgi_module
from shadowguard.middleware import wsgi as wsgi_module
from shadowguard.middleware.asgi import ShadowGuardMiddleware as ASGIMiddleware
from shadowguard.middleware.flask import ShadowGuard
from shadowguard.middleware.wsgi import ROUTE_KEY
from shadowguard.middleware.wsgi import ShadowGuardMiddleware as WSGIMiddleware
from tests.middleware._helpers import durations, new_durations

tracer = trace.get_tracer("tests")


def _points(reader: Any, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    if data is None:
        return []
    return [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    ]


@pytest.mark.parametrize(
    ("kind", "attribute"),
    [
        ("db.commit", "db.write_suppressed"),
        ("kafka.produce", "messaging.publish_suppressed"),
        ("http.request", "http.request_stubbed"),
        ("call", "shadowguard.call_suppressed"),
        ("mail.send", "mail.send_suppressed"),
    ],
)
def test_suppression_tags_span_and_counts(
    span_exporter: Any, metric_reader: Any, kind: str, attribute: str
) -> None:
    before = sum(
        p.value
        for p in _points(metric_reader, "shadowguard.suppressed")
        if p.attributes["kind"] == kind
    )
    with tracer.start_as_current_span("request"), shadow():
        record_suppression(kind, "target-1", error=ValueError("bad"))
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["shadow_mode"] is True
    assert span.attributes[attribute] is True
    (event,) = span.events
    assert event.name == "shadowguard.suppressed"
    assert event.attributes["kind"] == kind
    assert event.attributes["target"] == "target-1"
    assert event.attributes["error"] == "ValueError"
    points = [
        p for p in _points(metric_reader, "shadowguard.suppressed") if p.attributes["kind"] == kind
    ]
    assert sum(p.value for p in points) == before + 1
    assert all(p.attributes["shadow"] is True for p in points)


def test_entering_shadow_marks_current_span(span_exporter: Any) -> None:
    with tracer.start_as_current_span("request"), shadow():
        pass
    with tracer.start_as_current_span("primary"):
        pass
    shadow_span, primary_span = span_exporter.get_finished_spans()
    assert shadow_span.attributes["shadow_mode"] is True
    assert "shadow_mode" not in primary_span.attributes


def test_telemetry_fails_open(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("exporter down")

    monkeypatch.setattr(telemetry._suppressed_counter, "add", broken)
    monkeypatch.setattr(trace, "get_current_span", broken)
    caplog.set_level("DEBUG", logger="shadowguard.telemetry")
    with shadow() as scope:
        record_suppression("call", "f")
    assert scope.total == 1
    assert "could not" in caplog.text


def test_request_duration_histogram(metric_reader: Any) -> None:
    telemetry.record_request_duration(0.25, shadow=True, route="/orders", status=201)
    points = [
        p
        for p in _points(metric_reader, "shadowguard.request.duration")
        if p.attributes.get("http.route") == "/orders"
    ]
    assert points
    assert points[0].attributes["shadow"] is True
    assert points[0].attributes["http.response.status_code"] == 201


def test_request_duration_buckets_are_in_seconds(metric_reader: Any) -> None:
    """A P99 over the buckets means something (the SDK's default bounds are 0, 5, 10...)."""
    telemetry.record_request_duration(0.25, shadow=False, route="/buckets", status=200)
    (point,) = [
        p
        for p in _points(metric_reader, "shadowguard.request.duration")
        if p.attributes.get("http.route") == "/buckets"
    ]
    assert tuple(point.explicit_bounds) == telemetry.DURATION_BUCKETS
    assert list(point.bucket_counts) == [0] * 6 + [1] + [0] * (len(telemetry.DURATION_BUCKETS) - 6)


# --- Exactness: what users query is what the middleware measured -------------------------
#
# The middleware's clock is replaced by one the application advances, so every request's
# duration is known; routes are unique per test, so the shared cumulative reader's earlier
# points do not interfere.

Series = tuple[bool, str, int]  # shadow, http.route, status


class Clock:
    """A ``perf_counter`` stand-in that moves only when the application says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    """The requests served, per series: their durations in order."""

    durations: dict[Series, list[float]] = field(default_factory=dict)

    def add(self, series: Series, seconds: float) -> None:
        self.durations.setdefault(series, []).append(seconds)


def _histograms(reader: Any, routes: set[str]) -> dict[Series, Any]:
    found = {}
    for point in _points(reader, "shadowguard.request.duration"):
        route = point.attributes.get("http.route")
        if route in routes:
            key = (point.attributes["shadow"], route, point.attributes["http.response.status_code"])
            found[key] = point
    return found


def _assert_exact(reader: Any, served: Served) -> None:
    """Count, sum, buckets, min and max of every series are those of the durations served."""
    points = _histograms(reader, {route for _, route, _ in served.durations})
    assert set(points) == set(served.durations)
    for series, seconds_served in served.durations.items():
        point = points[series]
        bounds = list(point.explicit_bounds)
        buckets = [0] * (len(bounds) + 1)
        for seconds in seconds_served:
            buckets[bisect.bisect_left(bounds, seconds)] += 1
        assert point.count == len(seconds_served), series
        assert point.sum == math.fsum(seconds_served), series
        assert list(point.bucket_counts) == buckets, series
        assert (point.min, point.max) == (min(seconds_served), max(seconds_served)), series


# (path, route template, status, seconds): the durations fall in different default buckets
# and are binary fractions, so that the fake clock's arithmetic is exact.
ROUTES = [
    ("/orders/1", "/orders/{id}", 200, 0.00390625),
    ("/orders/2", "/orders/{id}", 200, 7.5),
    ("/orders/3", "/orders/{id}", 404, 0.25),
    ("/pay", "/pay", 503, 30.0),
    ("/pay", "/pay", 503, 120.0),
]


def _asgi_app(clock: Clock, prefix: str) -> Any:
    class Route:
        def __init__(self, path_format: str) -> None:
            self.path_format = path_format

    table = {(path, seconds): (prefix + route, status) for path, route, status, seconds in ROUTES}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seconds = float(dict(scope["headers"])[b"x-seconds"])
        route, status = table[scope["path"], seconds]
        scope["route"] = Route(route)
        clock.now += seconds
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return ASGIMiddleware(app)


def _asgi_request(app: Any, path: str, seconds: float, shadow: bool) -> None:
    host = b"orders-shadow" if shadow else b"orders"
    headers = [(b"host", host), (b"x-seconds", repr(seconds).encode())]
    coro = app({"type": "http", "method": "GET", "path": path, "headers": headers}, None, _send)
    with contextlib.suppress(StopIteration):
        coro.send(None)


async def _send(message: Any) -> None:
    return None


def _wsgi_app(clock: Clock, prefix: str) -> Any:
    table = {(path, seconds): (prefix + route, status) for path, route, status, seconds in ROUTES}

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        seconds = float(environ["HTTP_X_SECONDS"])
        route, status = table[environ["PATH_INFO"], seconds]
        environ[ROUTE_KEY] = route
        start_response(f"{status} WHATEVER", [])

        def body() -> Iterator[bytes]:
            clock.now += seconds  # a streaming body: the request lasts until close()
            yield b"ok"

        return body()

    return WSGIMiddleware(app)


def _start_response(status: str, headers: Any, exc_info: Any = None, /) -> Any:
    return None


def _wsgi_request(app: Any, path: str, seconds: float, shadow: bool) -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "HTTP_HOST": "orders-shadow" if shadow else "orders",
        "HTTP_X_SECONDS": repr(seconds),
    }
    body = app(environ, _start_response)
    for _ in body:
        pass
    body.close()


@pytest.mark.parametrize(
    ("module", "build", "request_one"),
    [(asgi_module, _asgi_app, _asgi_request), (wsgi_module, _wsgi_app, _wsgi_request)],
    ids=["asgi", "wsgi"],
)
def test_request_histogram_is_exact_across_collections(
    monkeypatch: pytest.MonkeyPatch, metric_reader: Any, module: Any, build: Any, request_one: Any
) -> None:
    """Per side, route and status: count, sum, buckets, min and max, collection after collection."""
    clock = Clock()
    monkeypatch.setattr(module, "perf_counter", clock)
    monkeypatch.setattr(_wsgi_response, "perf_counter", clock)  # the WSGI response objects
    prefix = f"/{uuid.uuid4().hex[:8]}"
    app = build(clock, prefix)
    served = Served()

    def serve(rounds: int) -> None:
        for i in range(rounds):
            for path, route, status, seconds in ROUTES:
                shadow = (i + status) % 2 == 0
                request_one(app, path, seconds, shadow)
                served.add((shadow, prefix + route, status), seconds)

    metric_reader.collect()
    serve(3)
    _assert_exact(metric_reader, served)
    serve(4)  # more requests after a collection: the next one holds all of them
    serve(1)
    _assert_exact(metric_reader, served)
    _assert_exact(metric_reader, served)  # a collection with nothing new changes nothing


def _in_threads(target: Any, n: int, collecting: Any = None) -> None:
    """Run ``target`` in ``n`` threads at once; ``collecting``: a reader collects meanwhile."""
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            collecting.collect()

    collector = threading.Thread(target=collect) if collecting is not None else None
    if collector is not None:
        collector.start()
    workers = [threading.Thread(target=target) for _ in range(n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    if collector is not None:
        collector.join()


def test_requests_from_threads_stay_exact_while_collecting(
    monkeypatch: pytest.MonkeyPatch, metric_reader: Any
) -> None:
    """Eight threads serve while another collects again and again: no request lost or doubled."""
    prefix = f"/{uuid.uuid4().hex[:8]}"
    app = _wsgi_app(Clock(), prefix)  # the real clock: only counts are compared

    def serve() -> None:
        for i in range(300):
            _wsgi_request(app, "/orders/1", 0.00390625, shadow=i % 3 == 0)

    _in_threads(serve, 8, collecting=metric_reader)
    points = _histograms(metric_reader, {prefix + "/orders/{id}"})
    counts = {series[0]: point.count for series, point in points.items()}
    assert counts == {True: 8 * 100, False: 8 * 200}


def test_suppression_counter_is_exact_across_collections(metric_reader: Any) -> None:
    kind = f"test.{uuid.uuid4().hex[:8]}"

    def counted() -> dict[str, int]:
        return {
            p.attributes["action"]: p.value
            for p in _points(metric_reader, "shadowguard.suppressed")
            if p.attributes["kind"] == kind
        }

    with shadow():
        for _ in range(3):
            record(kind, "t", "op")
        record(kind, "t", "op", action=Action.BLOCKED)
    assert counted() == {"suppressed": 3, "blocked": 1}
    with shadow():
        record(kind, "t", "op", action=Action.STUBBED)
        record(kind, "t", "op")
    assert counted() == {"suppressed": 4, "blocked": 1, "stubbed": 1}


def test_suppressions_from_threads_are_summed_exactly_in_bounded_memory(
    metric_reader: Any,
) -> None:
    """Suppressions wait as one sum per attribute set, however many: exact from 8 threads."""
    kind = f"test.{uuid.uuid4().hex[:8]}"
    metric_reader.collect()

    def suppress() -> None:
        with shadow():
            for i in range(2_000):
                record(kind, "t", "op", action=Action.BLOCKED if i % 4 == 0 else Action.SUPPRESSED)

    _in_threads(suppress, 8)
    # 16,000 suppressions and no collection: two waiting sums, not 16,000 entries.
    waiting = [
        n
        for (_, (n, attributes)) in telemetry._pending_counts.items()
        if attributes.get("kind") == kind
    ]
    assert sorted(waiting) == [4_000, 12_000]
    _in_threads(suppress, 8, collecting=metric_reader)
    counted = {
        p.attributes["action"]: p.value
        for p in _points(metric_reader, "shadowguard.suppressed")
        if p.attributes["kind"] == kind
    }
    assert counted == {"suppressed": 24_000, "blocked": 8_000}


def test_a_reader_that_stops_collecting_costs_bounded_memory(
    monkeypatch: pytest.MonkeyPatch, metric_reader: Any
) -> None:
    """Past MAX_PENDING queued measurements, requests record directly: still exact."""
    monkeypatch.setattr(telemetry, "MAX_PENDING", 5)
    clock = Clock()
    monkeypatch.setattr(wsgi_module, "perf_counter", clock)
    monkeypatch.setattr(_wsgi_response, "perf_counter", clock)
    prefix = f"/{uuid.uuid4().hex[:8]}"
    app = _wsgi_app(clock, prefix)
    served = Served()
    metric_reader.collect()
    for i in range(20):
        _wsgi_request(app, "/orders/2", 7.5, shadow=False)
        served.add((False, prefix + "/orders/{id}", 200), 7.5)
        assert len(telemetry._pending_durations) <= 5, i
    _assert_exact(metric_reader, served)


def test_failures_at_collection_stay_in_telemetry(
    monkeypatch: pytest.MonkeyPatch, metric_reader: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A histogram that raises while measurements are handed over: collection goes on."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("exporter down")

    caplog.set_level("DEBUG", logger="shadowguard.telemetry")
    metric_reader.collect()
    telemetry.record_request_duration(0.1, shadow=False, route="/broken", status=200)
    monkeypatch.setattr(telemetry._request_duration, "record", broken)
    metric_reader.collect()
    assert "could not hand measurements to the SDK" in caplog.text
    monkeypatch.undo()
    telemetry.record_request_duration(0.1, shadow=False, route="/broken", status=200)
    metric_reader.collect()  # the hook still runs after a failure


def test_flask_404_without_a_route_is_recorded(metric_reader: Any) -> None:
    """No matched rule: no http.route, the 404 counted, primary and shadow; nothing raises."""
    app = Flask(__name__)
    ShadowGuard(app)
    before = durations(metric_reader)
    client = app.test_client()
    assert client.get("/nowhere", buffered=True).status_code == 404
    shadow_host = {"Host": "orders-shadow"}
    assert client.get("/nowhere", headers=shadow_host, buffered=True).status_code == 404
    added = new_durations(before, durations(metric_reader))
    assert added == {
        (("http.response.status_code", 404), ("shadow", False)): 1,
        (("http.response.status_code", 404), ("shadow", True)): 1,
    }


def test_shadow_body_that_raises_is_recorded_once(metric_reader: Any) -> None:
    """The body's error reaches the server as before; the request ends and is counted once."""
    route = f"/{uuid.uuid4().hex[:8]}"

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        environ[ROUTE_KEY] = route
        start_response("200 OK", [])

        def body() -> Iterator[bytes]:
            yield b"first"
            raise ValueError("broken body")

        return body()

    guarded = WSGIMiddleware(app)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_HOST": "orders-shadow"}
    body: Any = guarded(environ, _start_response)
    with pytest.raises(ValueError, match="broken body"):
        for _ in body:
            pass
    assert current_scope() is None
    body.close()
    body.close()  # a second close records nothing more
    points = _histograms(metric_reader, {route})
    assert {series: point.count for series, point in points.items()} == {(True, route, 200): 1}


SDK_LATE = """
import contextlib
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader, MetricExporter, MetricExportResult, PeriodicExportingMetricReader,
)
from benchmarks.bench_middleware import asgi_app, asgi_caller
from shadowguard.middleware.asgi import ShadowGuardMiddleware

class Raising(MetricExporter):
    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        raise RuntimeError("collector down")
    def force_flush(self, timeout_millis=10_000):
        return True
    def shutdown(self, timeout_millis=30_000, **kwargs):
        pass

app = ShadowGuardMiddleware(asgi_app)
primary = asgi_caller(app, [(b"host", b"orders")])
shadow = asgi_caller(app, [(b"host", b"orders-shadow")])
for _ in range(50):  # served before any SDK: nobody to count them
    primary()
reader = InMemoryMetricReader()
periodic = PeriodicExportingMetricReader(Raising(), export_interval_millis=10)
metrics.set_meter_provider(MeterProvider(metric_readers=[reader, periodic]))
for i in range(3000):
    primary()
    if i % 3 == 0:
        shadow()
counts = {}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            if m.name == "shadowguard.request.duration":
                for p in m.data.data_points:
                    counts[p.attributes["shadow"]] = p.count
print(counts)
"""


def test_sdk_configured_after_requests_started_with_a_raising_exporter() -> None:
    """Requests before the SDK are not counted, every one after is; the exporter's errors
    (on the periodic reader's thread) never reach the application."""
    result = subprocess.run(
        [sys.executable, "-c", SDK_LATE], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{False: 3000, True: 1000}"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_worker_does_not_hand_over_its_parents_requests(metric_reader: Any) -> None:
    metric_reader.collect()
    telemetry.record_request_duration(0.1, shadow=False, route="/before-fork", status=200)
    assert telemetry._pending_durations
    pid = os.fork()
    if pid == 0:  # the child: nothing of the parent's is queued
        os._exit(0 if not telemetry._pending_durations else 1)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:  # a fork of a threaded process may deadlock
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child did not exit within 30 s")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert telemetry._pending_durations  # the parent keeps its own
    metric_reader.collect()
