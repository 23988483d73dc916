"""Pure ASGI middleware for FastAPI, Starlette and any ASGI 3 application.

Not built on Starlette's ``BaseHTTPMiddleware``: that runs the application in another
task, which is exactly what makes context variables (the shadow state) unreliable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any

from shadowguard.capture import Capture, Take
from shadowguard.capture import flush as flush_capture
from shadowguard.contract import PROCESS, Settings, settings_or_defaults, shadow, telemetry
from shadowguard.middleware._admission import SHED_BODY, SHED_HEADER, admit, asgi_timing, shed
from shadowguard.middleware._common import Precheck, detect_shadow, log_summary, start_up
from shadowguard.middleware._disconnect import DisconnectWatch, has_no_body

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

    ``capture`` records each HTTP request for ``shadowguard compare`` (see
    :func:`shadowguard.capture.capture_from`): None follows ``SHADOWGUARD_CAPTURE``.
    """

    def __init__(self, app: ASGIApp, capture: Any = None, **options: Any) -> None:
        self.app = app
        self._settings, self._precheck, self._capture = start_up(options, capture)

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            if kind == "lifespan" and self._capture is not None:
                send = _flushing_at_shutdown(send)
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
                await self._shadow_websocket(scope, receive, send, detection.signal, settings)
            return
        if detection is None:
            if not telemetry.collecting and self._capture is None:
                await self.app(scope, receive, send)  # nothing would keep the duration
                return
        else:
            await self._shadow(scope, receive, send, detection.signal, settings)
            return
        if self._capture is not None:
            await self._captured(scope, receive, send, self._capture)
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
        try:
            await self.app(scope, receive, observed)
        finally:
            route = scope.get("route")
            telemetry.request_served(
                perf_counter() - start, False, None if route is None else _route(route), status
            )

    async def _captured(
        self, scope: ASGIScope, receive: Receive, send: Send, capture: Capture
    ) -> None:
        """A primary request with capture on (and its duration, when an SDK collects)."""
        take = capture.start(
            False, scope.get("method", ""), scope.get("path", ""), None, scope.get("headers")
        )

        def observed(message: Message) -> Awaitable[None]:
            _observe(take, message)
            return send(message)

        error: BaseException | None = None
        try:
            await self.app(scope, receive, observed)
        except BaseException as exc:
            error = exc
            raise
        finally:
            route = scope.get("route")
            template = None if route is None else _route(route)
            take.finish(template, None, error)
            telemetry.request_served(perf_counter() - take.start, False, template, take.status)

    async def _shadow(
        self, scope: ASGIScope, receive: Receive, send: Send, signal: str | None, settings: Settings
    ) -> None:
        """Admit a shadow HTTP request (or shed it), then run it in a shadow scope."""
        headers = scope.get("headers") or ()
        slot = admit(settings, asgi_timing(headers, settings))
        if isinstance(slot, str):
            await _send_shed(send, slot)
            return
        status: int | None = None
        watch: DisconnectWatch | None = None
        capture = self._capture
        take = None
        if capture is not None:
            take = capture.start(
                True, scope.get("method", ""), scope.get("path", ""), None, headers
            )

        def observed(message: Message) -> Awaitable[None]:
            nonlocal status
            if status is None:
                status = message.get("status")
            if take is not None:
                _observe(take, message)
            if (
                watch is not None
                and message.get("type") == "http.response.body"
                and not message.get("more_body", False)
            ):
                watch.response_done = True  # a disconnect from now on is the server's "done"
            return send(message)

        start = perf_counter()
        shadow_scope = None
        error: BaseException | None = None
        cancel_scope = None
        try:
            if settings.cancel_disconnected_shadow:
                cancel_scope = _cancel_scope()
                watch = DisconnectWatch(
                    receive,
                    _count_disconnect,
                    has_no_body(headers),
                    None if cancel_scope is None else cancel_scope.cancel,
                )
                receive = watch.receive
            with shadow(f"request:{signal}") as shadow_scope:
                if cancel_scope is None:
                    await self.app(scope, receive, observed)
                else:
                    with cancel_scope:
                        await self.app(scope, receive, observed)
        except asyncio.CancelledError as exc:
            error = exc
            if (
                watch is None
                or not watch.disconnected
                or cancel_scope is not None  # the scope keeps its own; this one is not ours
                or _uncancel() > 0
            ):
                raise
            # Cancelled by the watch: the mirror client is gone, nobody reads an answer.
        except BaseException as exc:
            error = exc
            raise
        else:
            if watch is not None and watch.disconnected and cancel_scope is None:
                _uncancel()  # the application swallowed our cancellation
        finally:
            slot.release()
            if watch is not None:
                watch.stop()
            route = scope.get("route")
            template = None if route is None else _route(route)
            telemetry.request_served(perf_counter() - start, True, template, status)
            if take is not None:
                take.finish(template, shadow_scope, error)
            if shadow_scope is not None:
                log_summary(scope.get("method", "?"), scope.get("path", "?"), shadow_scope, status)

    async def _shadow_websocket(
        self, scope: ASGIScope, receive: Receive, send: Send, signal: str | None, settings: Settings
    ) -> None:
        """A shadow WebSocket holds a slot for its whole life; shed, it is closed (1013)."""
        slot = admit(settings, asgi_timing(scope.get("headers") or (), settings))
        if isinstance(slot, str):
            # Closed before accept: the server answers the handshake with 403.
            await send({"type": "websocket.close", "code": 1013, "reason": f"shadow {slot}"})
            return
        try:
            with shadow(f"request:{signal}"):
                await self.app(scope, receive, send)
        finally:
            slot.release()


def _observe(take: Take, message: Message) -> None:
    """Note a message the application sends: the response start, a body chunk, the end."""
    kind = message.get("type")
    if kind == "http.response.body":
        body = message.get("body")
        if body:
            take.body(body)
        if not message.get("more_body", False):
            take.body_done()
    elif kind == "http.response.start":
        take.status = message.get("status")
        take.headers = message.get("headers") or ()


def _flushing_at_shutdown(send: Send) -> Send:
    """``send`` for the lifespan scope: capture is flushed before shutdown is reported.

    uvicorn ends its process by raising the signal it was stopped with again, once it has
    shut down: no ``atexit`` hook runs then, so the records still queued are written here.
    """

    async def sending(message: Message) -> None:
        if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            await asyncio.get_running_loop().run_in_executor(None, flush_capture)
        await send(message)

    return sending


def _cancel_scope() -> Any:
    """An AnyIO cancel scope for a shadow request; None without AnyIO or an asyncio task.

    Unlike ``Task.cancel()``, a scope's cancellation waits for work the application
    shields, such as a synchronous endpoint that Starlette runs in a worker thread: a
    thread cannot be stopped, so the request (its slot, its shadow scope and the rollback
    at its end) must last until the thread returns.
    """
    global _anyio_scope
    try:
        asyncio.current_task()
    except RuntimeError:  # not an asyncio loop: the watch cancels nothing there
        return None
    if _anyio_scope is None:
        try:
            from anyio import CancelScope
        except ImportError:
            _anyio_scope = False
        else:
            _anyio_scope = CancelScope
    return None if _anyio_scope is False else _anyio_scope()


_anyio_scope: Any = None


def _count_disconnect() -> None:
    shed("disconnected", PROCESS.settings or settings_or_defaults())


def _uncancel() -> int:
    """Withdraw the watch's cancellation request; what remains is someone else's."""
    task = asyncio.current_task()
    uncancel = getattr(task, "uncancel", None)  # Python 3.11+
    return int(uncancel()) if uncancel is not None else 0


async def _send_shed(send: Send, reason: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(SHED_BODY)).encode()),
                (SHED_HEADER.encode(), reason.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": SHED_BODY})
