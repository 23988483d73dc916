"""Pure ASGI middleware for FastAPI, Starlette and any ASGI 3 application.

Not built on Starlette's ``BaseHTTPMiddleware``: that runs the application in another
task, which is exactly what makes context variables (the shadow state) unreliable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any

from shadowguard.contract import PROCESS, settings_or_defaults, shadow, telemetry
from shadowguard.middleware._common import (
    Precheck,
    detect_shadow,
    log_summary,
    settings_from_options,
)

__all__ = ["ShadowGuardMiddleware"]

ASGIScope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, Receive, Send], Awaitable[None]]


def _route(route: Any) -> str | None:
    """The template of the route Starlette/FastAPI matched (``/orders/{order_id}``)."""
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
        self._precheck = Precheck(self._settings or settings_or_defaults())

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        # Without options, the process settings of the moment (configure() applies at once).
        settings = self._settings or PROCESS.settings or settings_or_defaults()
        precheck = self._precheck
        if precheck.settings is not settings:
            precheck = self._precheck = Precheck(settings)
        # HTTP/2 :authority reaches ASGI applications as the "host" header; scope["server"]
        # is the listening socket's address, which never carries a shadow signal.
        headers = scope.get("headers") or ()
        detection = detect_shadow(headers, settings) if precheck.asgi(headers) else None
        if kind == "websocket":
            if detection is None:
                await self.app(scope, receive, send)
            else:
                with shadow(f"request:{detection.signal}"):
                    await self.app(scope, receive, send)
            return
        if detection is None and not telemetry.collecting:
            await self.app(scope, receive, send)  # nothing would keep the duration
            return

        status: int | None = None

        def observed(message: Message) -> Awaitable[None]:
            # A plain function returning the server's awaitable: no coroutine per message.
            # Only http.response.start has a status (http.response.debug may come first).
            nonlocal status
            if status is None:
                status = message.get("status")
            return send(message)

        start = perf_counter()
        if detection is None:
            try:
                await self.app(scope, receive, observed)
            finally:
                route = scope.get("route")
                telemetry.request_served(
                    perf_counter() - start, False, None if route is None else _route(route), status
                )
            return
        guard = shadow(f"request:{detection.signal}")
        shadow_scope = None
        try:
            with guard as shadow_scope:
                await self.app(scope, receive, observed)
        finally:
            route = scope.get("route")
            telemetry.request_served(
                perf_counter() - start, True, None if route is None else _route(route), status
            )
            if shadow_scope is not None:
                log_summary(scope.get("method", "?"), scope.get("path", "?"), shadow_scope, status)
