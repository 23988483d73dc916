"""Each middleware against the bare application, on a trivial endpoint called in-process.

Primary requests are the ones that matter; their targets (added per request) are issue
#11's with the OpenTelemetry API alone and issue #17's with the SDK configured. Shadow
requests run inside a server span (as OpenTelemetry's instrumentation makes one) and
suppress two calls, so the span events and the suppression counter are on the path.
Capture (issue #13) is timed on its request path: the take, the body copy and the hand-over
to a bounded queue, with the writer left out (it runs on its own thread; a writer sharing the
GIL with a loop of microsecond requests would time the writer, not the request). Ends with
the memory of 100,000 shadow requests, and of 100,000 captured requests written to SQLite by
the real writer (tracemalloc).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import tempfile
import tracemalloc
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict

from opentelemetry import trace

from benchmarks._harness import QUICK, Harness
from shadowguard import capture, side_effect
from shadowguard.capture import Capture, CaptureSettings, Encoded, Take
from shadowguard.middleware.asgi import ShadowGuardMiddleware as ASGIMiddleware
from shadowguard.middleware.wsgi import ShadowGuardMiddleware as WSGIMiddleware


class Targets(TypedDict):
    """Added per primary request (ns), API only / SDK configured, fastest samples."""

    target_added_ns: float
    sdk_target_added_ns: float
    fastest: bool


ASGI_WSGI = Targets(target_added_ns=2000, sdk_target_added_ns=3000, fastest=True)
FLASK = Targets(target_added_ns=5000, sdk_target_added_ns=6000, fastest=True)
DJANGO = Targets(target_added_ns=1500, sdk_target_added_ns=3000, fastest=True)
#: Capture on the primary path, over the bare application (issue #13: <= 5 us plus the body).
CAPTURE = Targets(target_added_ns=5000, sdk_target_added_ns=5000, fastest=True)

tracer = trace.get_tracer("benchmarks")


class _NullSink:
    def write(self, batch: Sequence[Encoded]) -> None:
        return None

    def close(self) -> None:
        return None


class RequestPathCapture(Capture):
    """Capture whose finished takes go to a bounded deque no writer reads: the request path."""

    __slots__ = ("taken",)

    def __init__(self) -> None:
        super().__init__(CaptureSettings(), sink=_NullSink())
        self.taken: deque[Take] = deque(maxlen=1000)

    def submit(self, take: Take) -> None:
        self.taken.append(take)


@side_effect
def notify(order: int) -> None:
    """What a handler does besides answering: suppressed in shadow."""


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def asgi_app_notifying(scope: Any, receive: Any, send: Any) -> None:
    notify(1)
    notify(2)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


def _asgi_scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/orders",
        "headers": [(b"user-agent", b"bench"), (b"accept", b"*/*"), *headers],
    }


def asgi_caller(app: Any, headers: list[tuple[bytes, bytes]]) -> Callable[[], None]:
    """Drive one request to completion without an event loop (the app never suspends)."""

    def call() -> None:
        coro = app(_asgi_scope(headers), _receive, _send)
        with contextlib.suppress(StopIteration):
            coro.send(None)

    return call


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def wsgi_app_notifying(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    notify(1)
    notify(2)
    return wsgi_app(environ, start_response)


def wsgi_caller(app: Any, extra: dict[str, str]) -> Callable[[], None]:
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/orders",
        "SERVER_NAME": "orders",
        "SERVER_PORT": "80",
        "HTTP_HOST": "orders",
        "HTTP_USER_AGENT": "bench",
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
        "wsgi.errors": None,
        **extra,
    }

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    def call() -> None:
        body = app(dict(base), start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    return call


def in_span(call: Callable[[], None]) -> Callable[[], None]:
    """The request inside a server span, as OpenTelemetry's HTTP instrumentation runs it."""

    def spanned() -> None:
        with tracer.start_as_current_span("GET /orders"):
            call()

    return spanned


def _middleware(
    h: Harness,
    protocol: str,
    caller: Callable[[Any, Any], Callable[[], None]],
    middleware: Callable[..., Any],
    apps: tuple[Any, Any],
    primary: Any,
    shadow: Any,
) -> None:
    """The three comparisons of a middleware: ``apps`` is the plain app and the notifying one,
    ``primary``/``shadow`` the request's headers as ``caller`` takes them."""
    app, app_notifying = apps
    h.compare(
        f"{protocol}: primary request vs bare app",
        caller(app, primary),
        caller(middleware(app), primary),
        **ASGI_WSGI,
    )
    h.compare(
        f"{protocol}: primary request, capture on (request path) vs bare app",
        caller(app, primary),
        caller(middleware(app, capture=RequestPathCapture()), primary),
        **CAPTURE,
    )
    h.compare(
        f"{protocol}: shadow request, 2 suppressed, in a span (info)",
        in_span(caller(app_notifying, shadow)),
        in_span(caller(middleware(app_notifying), shadow)),
        fastest=True,
    )


def _asgi(h: Harness) -> None:
    primary, shadow = [(b"host", b"orders")], [(b"host", b"orders-shadow")]
    _middleware(
        h, "ASGI", asgi_caller, ASGIMiddleware, (asgi_app, asgi_app_notifying), primary, shadow
    )


def _wsgi(h: Harness) -> None:
    shadow = {"HTTP_HOST": "orders-shadow"}
    _middleware(h, "WSGI", wsgi_caller, WSGIMiddleware, (wsgi_app, wsgi_app_notifying), {}, shadow)


def _flask(h: Harness) -> None:
    if not h.imports("flask", missing="flask not installed: Flask benchmark skipped"):
        return
    from flask import Flask

    from shadowguard.middleware.flask import ShadowGuard

    def build(guarded: bool) -> Any:
        app = Flask("bench")
        app.add_url_rule("/orders", "orders", lambda: "ok")
        if guarded:
            ShadowGuard(app)
        return app

    bare, guarded = build(False), build(True)
    h.compare(
        "Flask: primary request vs bare app",
        wsgi_caller(bare, {}),
        wsgi_caller(guarded, {}),
        **FLASK,
    )
    h.compare(
        "Flask: shadow request (info) vs bare app",
        wsgi_caller(bare, {}),
        wsgi_caller(guarded, {"HTTP_HOST": "orders-shadow"}),
        fastest=True,
    )


def _django(h: Harness) -> None:
    if not h.imports("django", missing="django not installed: Django benchmark skipped"):
        return
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False, ALLOWED_HOSTS=["*"], DATABASES={}, USE_TZ=True, SECRET_KEY="bench"
        )
        django.setup()
    from django.http import HttpResponse
    from django.test import RequestFactory

    from shadowguard.middleware.django import ShadowGuardMiddleware

    response = HttpResponse(b"ok")

    def view(request: Any) -> Any:
        return response

    middleware = ShadowGuardMiddleware(view)
    primary = RequestFactory().get("/orders")
    h.compare(
        "Django: primary request vs bare get_response",
        lambda: view(primary),
        lambda: middleware(primary),
        **DJANGO,
    )
    h.note("Django shadow requests open a transaction per database alias: not timed here")


def _memory(h: Harness) -> None:
    """Memory growth over 100,000 shadow requests through the ASGI and WSGI middleware."""
    n = 20_000 if QUICK else 100_000
    for name, call in [
        ("ASGI", asgi_caller(ASGIMiddleware(asgi_app), [(b"host", b"orders-shadow")])),
        ("WSGI", wsgi_caller(WSGIMiddleware(wsgi_app), {"HTTP_HOST": "orders-shadow"})),
    ]:
        for _ in range(2000):
            call()
        if h.between_samples is not None:
            h.between_samples()

        def shadow_requests(call: Callable[[], None] = call) -> None:
            for _ in range(n):
                call()
            if h.between_samples is not None:
                # Queued measurements are handed over at collection, as many as fit in half
                # its timeout: under tracemalloc that takes several.
                for _ in range(4):
                    h.between_samples()

        grown = _growth(shadow_requests)
        h.note(f"{name} middleware: {n:,} shadow requests, memory grew by {grown:,} bytes")


def _growth(work: Callable[[], None]) -> int:
    """Bytes the traced heap grew by over ``work()``, garbage collected before and after."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    work()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def _capture_memory(h: Harness) -> None:
    """Memory over 100,000 captured primary requests, written to SQLite by the real writer.

    The requests outrun the writer here (nothing else runs between them), so the queue fills
    and records are dropped and counted: memory stays bounded by the queue, not the traffic.
    """
    n = 20_000 if QUICK else 100_000
    logging.getLogger("shadowguard.capture").setLevel(logging.ERROR)  # one drop line per burst
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite://{Path(folder).resolve()}/capture.db"
        call = asgi_caller(ASGIMiddleware(asgi_app, capture=url), [(b"host", b"orders")])
        for _ in range(2000):
            call()
        capture.flush(30)
        warm = sum(1 for _ in capture.read_records(url))

        def captured_requests() -> None:
            for _ in range(n):
                call()
            capture.flush(60)

        grown = _growth(captured_requests)
        written = sum(1 for _ in capture.read_records(url))
        capture.close(30)
    h.note(
        f"ASGI capture to SQLite: {n:,} primary requests, memory grew by {grown:,} bytes; "
        f"{written - warm:,} written, the rest dropped (queue of "
        f"{CaptureSettings().queue_size:,})"
    )


def run(h: Harness) -> None:
    _asgi(h)
    _wsgi(h)
    _flask(h)
    _django(h)
    _memory(h)
    _capture_memory(h)
