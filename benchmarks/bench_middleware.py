"""Each middleware against the bare application, on a trivial endpoint called in-process.

Primary requests are the ones that matter (target: under 5 us added); shadow requests
are shown for information. Ends with the memory of 100,000 shadow requests (tracemalloc).
"""

from __future__ import annotations

import contextlib
import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

from benchmarks._harness import QUICK, Harness
from shadowguard.middleware.asgi import ShadowGuardMiddleware as ASGIMiddleware
from shadowguard.middleware.wsgi import ShadowGuardMiddleware as WSGIMiddleware

TARGET_ADDED_NS = 5000


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
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


def _flask(h: Harness) -> None:
    try:
        from flask import Flask
    except ImportError:
        h.note("flask not installed: Flask benchmark skipped")
        return
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
        target_added_ns=TARGET_ADDED_NS,
    )
    h.compare(
        "Flask: shadow request (info) vs bare app",
        wsgi_caller(bare, {}),
        wsgi_caller(guarded, {"HTTP_HOST": "orders-shadow"}),
    )


def _django(h: Harness) -> None:
    try:
        import django
        from django.conf import settings
    except ImportError:
        h.note("django not installed: Django benchmark skipped")
        return
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
    shadow = RequestFactory().get("/orders", HTTP_X_SHADOW_REQUEST="1")
    h.compare(
        "Django: primary request vs bare get_response",
        lambda: view(primary),
        lambda: middleware(primary),
        target_added_ns=TARGET_ADDED_NS,
    )
    h.note("Django shadow requests open a transaction per database alias: not timed here")
    del shadow


def _memory(h: Harness) -> None:
    """Memory growth over 100,000 shadow requests through the ASGI and WSGI middleware."""
    n = 20_000 if QUICK else 100_000
    for name, call in [
        ("ASGI", asgi_caller(ASGIMiddleware(asgi_app), [(b"host", b"orders-shadow")])),
        ("WSGI", wsgi_caller(WSGIMiddleware(wsgi_app), {"HTTP_HOST": "orders-shadow"})),
    ]:
        for _ in range(2000):
            call()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for _ in range(n):
            call()
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        h.note(f"{name} middleware: {n:,} shadow requests, memory grew by {grown:,} bytes")


def run(h: Harness) -> None:
    asgi_bare = asgi_caller(asgi_app, [(b"host", b"orders")])
    guarded = ASGIMiddleware(asgi_app)
    h.compare(
        "ASGI: primary request vs bare app",
        asgi_bare,
        asgi_caller(guarded, [(b"host", b"orders")]),
        target_added_ns=TARGET_ADDED_NS,
    )
    h.compare(
        "ASGI: shadow request (info) vs bare app",
        asgi_bare,
        asgi_caller(guarded, [(b"host", b"orders-shadow")]),
    )
    wsgi_bare = wsgi_caller(wsgi_app, {})
    wguarded = WSGIMiddleware(wsgi_app)
    h.compare(
        "WSGI: primary request vs bare app",
        wsgi_bare,
        wsgi_caller(wguarded, {}),
        target_added_ns=TARGET_ADDED_NS,
    )
    h.compare(
        "WSGI: shadow request (info) vs bare app",
        wsgi_bare,
        wsgi_caller(wguarded, {"HTTP_HOST": "orders-shadow"}),
    )
    _flask(h)
    _django(h)
    _memory(h)
