"""WSGI middleware: each shadow request runs in a shadow scope until its body is closed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Protocol

from shadowguard import _config, telemetry
from shadowguard._detect import detect
from shadowguard.middleware._common import (
    Precheck,
    RequestScope,
    environ_headers,
    log_summary,
    settings_from_options,
)

__all__ = ["ROUTE_KEY", "ShadowGuardMiddleware"]

#: A framework adapter may put the matched route template under this environ key.
ROUTE_KEY = "shadowguard.route"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = ..., /
    ) -> Callable[[bytes], object]: ...


WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _environ_route(environ: dict[str, Any]) -> str | None:
    route = environ.get(ROUTE_KEY)
    return route if isinstance(route, str) else None


class _Request:
    """Timing and status of one request, recorded once when its body is done."""

    __slots__ = ("environ", "recorded", "route", "route_of", "scope", "start", "status")

    def __init__(
        self,
        environ: dict[str, Any],
        scope: RequestScope | None,
        route_of: Callable[[dict[str, Any]], str | None],
    ) -> None:
        self.environ = environ
        self.route_of = route_of
        self.scope = scope
        self.start = time.perf_counter()
        self.status: int | None = None
        self.route: str | None = None
        self.recorded = False

    def start_response(self, start_response: StartResponse) -> StartResponse:
        def observed(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            try:
                self.status = int(status[:3])
            except ValueError:
                self.status = None
            self.route = self.route_of(self.environ)
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        return observed

    def done(self) -> None:
        if self.recorded:
            return
        self.recorded = True
        scope = self.scope
        try:
            if scope is not None:
                scope.finish()
        finally:
            telemetry.record_request_duration(
                time.perf_counter() - self.start,
                shadow=scope is not None,
                route=self.route,
                status=self.status,
            )
            if scope is not None:
                log_summary(
                    self.environ.get("REQUEST_METHOD", "?"),
                    self.environ.get("PATH_INFO", "?"),
                    scope.scope,
                    self.status,
                )


class _PrimaryBody:
    """A primary response body: iterated natively, only ``close()`` is ours (for timing)."""

    __slots__ = ("_inner", "_request")

    def __init__(self, inner: Iterable[bytes], request: _Request) -> None:
        self._inner = inner
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._inner)

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        try:
            if close is not None:
                close()
        finally:
            self._request.done()


class _Body:
    """A shadow response body; the request ends when the server closes it."""

    __slots__ = ("_inner", "_iterator", "_request", "_scope")

    def __init__(self, inner: Iterable[bytes], request: _Request, scope: RequestScope) -> None:
        self._inner = inner
        self._iterator: Iterator[bytes] | None = None
        self._request = request
        self._scope = scope

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        # A streaming generator runs here, in the server's frames: re-enter the scope.
        token = self._scope.enter()
        try:
            if self._iterator is None:
                self._iterator = iter(self._inner)
            return next(self._iterator)
        finally:
            self._scope.exit(token)

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        try:
            if close is not None:
                token = self._scope.enter()
                try:
                    close()
                finally:
                    self._scope.exit(token)
        finally:
            self._request.done()


class ShadowGuardMiddleware:
    """Run each shadow request inside a shadow scope, from the call until ``close()``.

    ``options`` are :class:`~shadowguard.Settings` fields, validated here (a bad value
    raises :class:`~shadowguard.ConfigError` at start-up). A streaming body runs after
    the application returned, while the server iterates it; the scope is re-entered for
    every chunk and for ``close()``, and ends when the server closes the body, as
    PEP 3333 requires every server to do::

        app.wsgi_app = ShadowGuardMiddleware(app.wsgi_app)
    """

    def __init__(self, wsgi_app: WSGIApp, **options: Any) -> None:
        self.wsgi_app = wsgi_app
        self._settings = settings_from_options(options)
        self._precheck: Precheck | None = None
        #: Called at ``start_response``: the matched route template, when a framework knows it.
        self.route_of: Callable[[dict[str, Any]], str | None] = _environ_route

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        settings = self._settings or _config.settings_or_defaults()
        precheck = self._precheck
        if precheck is None or precheck.settings is not settings:
            precheck = self._precheck = Precheck(settings)
        detection = (
            detect(environ_headers(environ, settings), settings=settings)
            if precheck.environ(environ)
            else None
        )
        if not detection:
            request = _Request(environ, None, self.route_of)
            try:
                body = self.wsgi_app(environ, request.start_response(start_response))
            except BaseException:
                request.done()
                raise
            file_wrapper = environ.get("wsgi.file_wrapper")
            if isinstance(body, (list, tuple)) or (
                isinstance(file_wrapper, type) and isinstance(body, file_wrapper)
            ):
                # Nothing runs while the server sends these: hand them over untouched
                # (a file wrapper keeps the server's sendfile fast path).
                request.done()
                return body
            return _PrimaryBody(body, request)

        scope = RequestScope(f"request:{detection.signal}")
        request = _Request(environ, scope, self.route_of)
        token = scope.enter()
        try:
            body = self.wsgi_app(environ, request.start_response(start_response))
        except BaseException:
            scope.exit(token)
            request.done()
            raise
        scope.exit(token)
        return _Body(body, request, scope)
