"""WSGI middleware: each shadow request runs in a shadow scope until its body is closed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any

from shadowguard.capture import Capture
from shadowguard.contract import PROCESS, RequestScope, Settings, settings_or_defaults, telemetry
from shadowguard.middleware._admission import SHED_BODY, admit, environ_timing, shed_headers
from shadowguard.middleware._common import Precheck, detect_shadow, environ_headers, start_up
from shadowguard.middleware._wsgi_response import (
    EXCEPTION_KEY,
    CapturedResponse,
    Response,
    ShadowResponse,
    StartResponse,
    WSGIApp,
    request_path,
)

__all__ = ["EXCEPTION_KEY", "ROUTE_KEY", "ShadowGuardMiddleware"]

#: A framework adapter may put the matched route template under this environ key.
ROUTE_KEY = "shadowguard.route"


def _environ_route(environ: dict[str, Any]) -> str | None:
    route = environ.get(ROUTE_KEY)
    return route if isinstance(route, str) else None


class ShadowGuardMiddleware:
    """Run each shadow request inside a shadow scope, from the call until ``close()``.

    ``options`` are :class:`~shadowguard.Settings` fields, validated here (a bad value
    raises :class:`~shadowguard.ConfigError` at start-up). A streaming body runs after
    the application returned, while the server iterates it; the scope is re-entered for
    every chunk and for ``close()``, and ends when the server closes the body, as
    PEP 3333 requires every server to do::

        app.wsgi_app = ShadowGuardMiddleware(app.wsgi_app)

    ``capture`` records each request for ``shadowguard compare`` (see
    :func:`shadowguard.capture.capture_from`): None follows ``SHADOWGUARD_CAPTURE``.
    """

    def __init__(self, wsgi_app: WSGIApp, capture: Any = None, **options: Any) -> None:
        self.wsgi_app = wsgi_app
        self._settings, self._precheck, self.capture = start_up(options, capture)
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
        if not telemetry.collecting and self.capture is None:
            return self.wsgi_app(environ, start_response)  # nothing would keep the duration
        if self.capture is not None:
            return self._captured(environ, start_response, self.capture)

        response = Response()
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

    def _captured(
        self, environ: dict[str, Any], start_response: StartResponse, capture: Capture
    ) -> Iterable[bytes]:
        """A primary request with capture on (and its duration, when an SDK collects)."""
        take = capture.start(
            False,
            environ.get("REQUEST_METHOD", ""),
            request_path(environ),
            environ.get("HTTP_X_REQUEST_ID"),
        )
        response = CapturedResponse()
        response.take = take
        response.environ = environ
        response.route_of = self.route_of
        response.server_start_response = start_response
        response.status = response.route = None
        response._iterator = None
        response.start = take.start
        try:
            body = self.wsgi_app(environ, response.start_response)
        except BaseException as exc:
            response.done(exc)
            raise
        file_wrapper = environ.get("wsgi.file_wrapper")
        if type(body) is list:
            for chunk in body:
                take.body(chunk)
            response.done()
            return body
        if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
            response.done()  # the server's sendfile: the body is not read here
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
            take = None
            if self.capture is not None:
                take = self.capture.start(
                    True,
                    environ.get("REQUEST_METHOD", ""),
                    request_path(environ),
                    environ.get("HTTP_X_REQUEST_ID"),
                )
            response = ShadowResponse(
                environ, self.route_of, start_response, request_scope, take, slot
            )
        except BaseException:
            slot.release()
            raise
        token = request_scope.enter()
        try:
            body = self.wsgi_app(environ, response.start_response)
        except BaseException as exc:
            request_scope.exit(token)
            response.done(exc)
            raise
        request_scope.exit(token)
        response._inner = body
        return response
