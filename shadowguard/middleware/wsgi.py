"""WSGI middleware: each shadow request runs in a shadow scope until its body is closed."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from time import perf_counter
from types import TracebackType
from typing import Any, Protocol

from shadowguard.contract import PROCESS, RequestScope, Settings, settings_or_defaults, telemetry
from shadowguard.middleware._admission import (
    SHED_BODY,
    Slot,
    admit,
    environ_timing,
    shed_headers,
)
from shadowguard.middleware._common import (
    Precheck,
    detect_shadow,
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


#: Status lines seen, and their codes: they repeat, so each is parsed once.
_status_codes: dict[str, int] = {}


def _parse_status(status: str) -> int | None:
    try:
        code = int(status[:3])
    except (TypeError, ValueError):  # the server will say what is wrong with it, not us
        return None
    if len(_status_codes) < 1000:
        _status_codes[status] = code
    return code


class _Response:
    """One primary request's response, while the SDK collects: the ``start_response`` the
    application gets (it notes the status and the matched route, while the framework still
    knows it) and, when the body must be wrapped, the body the server gets.

    The request is recorded once, when the body is done: at once for a list or a file
    wrapper, otherwise when the server closes the body. Made without ``__init__`` on the
    primary path (the middleware sets the slots): a Python frame less per request.
    """

    __slots__ = (
        "_inner",
        "environ",
        "route",
        "route_of",
        "server_start_response",
        "start",
        "status",
    )

    _inner: Iterable[bytes]
    environ: dict[str, Any]
    route: str | None
    route_of: Callable[[dict[str, Any]], str | None]
    server_start_response: StartResponse
    #: perf_counter() at the start; None once the request is recorded.
    start: float | None
    status: int | None

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        """Note the status and the route, then pass on to the server's."""
        self.status = _status_codes.get(status) or _parse_status(status)
        try:
            self.route = self.route_of(self.environ)
        except Exception:  # telemetry fails open: never into the application
            self.route = None
        if exc_info is None:
            return self.server_start_response(status, headers)
        return self.server_start_response(status, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._inner)

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        try:
            if close is not None:
                close()
        finally:
            start = self.start
            if start is not None:  # done(), without a call more on the primary path
                self.start = None
                telemetry.request_served(perf_counter() - start, False, self.route, self.status)

    def done(self) -> None:
        start = self.start
        if start is not None:
            self.start = None
            telemetry.request_served(perf_counter() - start, False, self.route, self.status)


class _ShadowResponse(_Response):
    """A shadow request's response: the scope is re-entered for every chunk the server
    pulls and for ``close()``, and ends when the server closes the body."""

    __slots__ = ("_iterator", "_request_scope", "_slot")

    def __init__(
        self,
        environ: dict[str, Any],
        route_of: Callable[[dict[str, Any]], str | None],
        start_response: StartResponse,
        request_scope: RequestScope,
        slot: Slot,
    ) -> None:
        self._slot = slot
        self.environ = environ
        self.route_of = route_of
        self.server_start_response = start_response
        self.status = None
        self.route = None
        self.start = perf_counter()
        self._request_scope = request_scope
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __del__(self) -> None:
        # A server that drops the body without close() (werkzeug's development server when
        # the client resets the connection, a PEP 3333 violation elsewhere) would keep the
        # admission slot taken for the life of the process: give it back.
        if self.start is not None:
            self.start = None
            self._slot.release()

    def __next__(self) -> bytes:
        # A streaming generator runs here, in the server's frames: re-enter the scope.
        token = self._request_scope.enter()
        try:
            if self._iterator is None:
                self._iterator = iter(self._inner)
            return next(self._iterator)
        finally:
            self._request_scope.exit(token)

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        try:
            if close is not None:
                token = self._request_scope.enter()
                try:
                    close()
                finally:
                    self._request_scope.exit(token)
        finally:
            self.done()

    def done(self) -> None:
        start = self.start
        if start is None:
            return
        self.start = None
        try:
            self._request_scope.finish()
        finally:
            self._slot.release()
            telemetry.request_served(perf_counter() - start, True, self.route, self.status)
            log_summary(
                self.environ.get("REQUEST_METHOD", "?"),
                self.environ.get("PATH_INFO", "?"),
                self._request_scope.scope,
                self.status,
            )


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
        self._precheck = Precheck(self._settings or settings_or_defaults())
        #: Called at ``start_response``: the matched route template, when a framework knows it.
        self.route_of: Callable[[dict[str, Any]], str | None] = _environ_route

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # Without options, the process settings of the moment (configure() applies at once).
        settings = self._settings or PROCESS.settings or settings_or_defaults()
        precheck = self._precheck
        if precheck.settings is not settings:
            precheck = self._precheck = Precheck(settings)
        if precheck.environ(environ):
            detection = detect_shadow(environ_headers(environ, settings), settings)
            if detection is not None:
                return self._shadow(environ, start_response, detection.signal, settings)
        if not telemetry.collecting:  # nothing would keep the duration: pass straight on
            return self.wsgi_app(environ, start_response)

        response = _Response()
        response.environ = environ
        response.route_of = self.route_of
        response.server_start_response = start_response
        response.status = response.route = None
        response.start = perf_counter()
        try:
            body = self.wsgi_app(environ, response.start_response)
        except BaseException:
            response.done()
            raise
        file_wrapper = environ.get("wsgi.file_wrapper")
        if type(body) is list or (
            isinstance(file_wrapper, type) and isinstance(body, file_wrapper)
        ):
            response.done()  # a list is sent as it is; a file keeps the server's sendfile
            return body
        response._inner = body
        return response

    def _shadow(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        signal: str | None,
        settings: Settings,
    ) -> Iterable[bytes]:
        slot = admit(settings, environ_timing(environ, settings))
        if isinstance(slot, str):
            start_response("503 Service Unavailable", shed_headers(slot))
            return [SHED_BODY]
        try:
            request_scope = RequestScope(f"request:{signal}")
            response = _ShadowResponse(environ, self.route_of, start_response, request_scope, slot)
        except BaseException:
            slot.release()
            raise
        token = request_scope.enter()
        try:
            body = self.wsgi_app(environ, response.start_response)
        except BaseException:
            request_scope.exit(token)
            response.done()
            raise
        request_scope.exit(token)
        response._inner = body
        return response
