"""Pure ASGI middleware for FastAPI, Starlette and any ASGI 3 application.

Not built on Starlette's ``BaseHTTPMiddleware``: that runs the application in another
task, which is exactly what makes context variables (the shadow state) unreliable.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from shadowguard import _config, telemetry
from shadowguard._context import shadow
from shadowguard._detect import detect
from shadowguard.middleware._common import Precheck, log_summary, settings_from_options

__all__ = ["ShadowGuardMiddleware"]

ASGIScope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, Receive, Send], Awaitable[None]]


def _route(scope: ASGIScope) -> str | None:
    """The route template Starlette/FastAPI matched (``/orders/{order_id}``), if any."""
    route = scope.get("route")
    if route is None:
        return None
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else None


class ShadowGuardMiddleware:
    """Run each shadow HTTP request (and WebSocket connection) inside a shadow scope.

    ``options`` are :class:`~shadowguard.Settings` fields (``marker_header=...``,
    ``mode=...``) and are validated here, so a bad value fails at start-up with
    :class:`~shadowguard.ConfigError`. The scope covers the whole response, streaming
    bodies and Starlette background tasks included, because all of them run inside the
    application call. Lifespan and other non-HTTP scopes pass through untouched::

        app = FastAPI()
        app.add_middleware(ShadowGuardMiddleware)
    """

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        self.app = app
        self._settings = settings_from_options(options)
        self._precheck: Precheck | None = None

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        settings = self._settings or _config.settings_or_defaults()
        precheck = self._precheck
        if precheck is None or precheck.settings is not settings:
            precheck = self._precheck = Precheck(settings)
        # HTTP/2 :authority reaches ASGI applications as the "host" header; scope["server"]
        # is the listening socket's address, which never carries a shadow signal.
        headers = scope.get("headers") or ()
        detection = detect(headers, settings=settings) if precheck.asgi(headers) else None
        if kind == "websocket":
            if detection:
                with shadow(f"request:{detection.signal}"):
                    await self.app(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return

        status: int | None = None

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = time.perf_counter()
        if not detection:
            try:
                await self.app(scope, receive, send_observed)
            finally:
                telemetry.record_request_duration(
                    time.perf_counter() - start, shadow=False, route=_route(scope), status=status
                )
            return
        guard = shadow(f"request:{detection.signal}")
        shadow_scope = None
        try:
            with guard as shadow_scope:
                await self.app(scope, receive, send_observed)
        finally:
            telemetry.record_request_duration(
                time.perf_counter() - start, shadow=True, route=_route(scope), status=status
            )
            if shadow_scope is not None:
                log_summary(scope.get("method", "?"), scope.get("path", "?"), shadow_scope, status)
