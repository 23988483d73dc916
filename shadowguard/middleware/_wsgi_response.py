"""The response objects of the WSGI middleware: what the server iterates and closes.

:class:`Response` notes a primary request's status and route for telemetry;
:class:`CapturedResponse` also reads the body for the capture record; :class:`ShadowResponse`
re-enters the request's shadow scope for every chunk and ends it when the body is closed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from time import perf_counter
from types import TracebackType
from typing import Any, Protocol

from shadowguard.capture import Take
from shadowguard.contract import RequestScope, telemetry
from shadowguard.middleware._admission import Slot
from shadowguard.middleware._common import log_summary

__all__ = [
    "EXCEPTION_KEY",
    "CapturedResponse",
    "ExcInfo",
    "Response",
    "ShadowResponse",
    "StartResponse",
    "WSGIApp",
    "request_path",
]

#: A framework adapter may put an exception it turned into an error response (or its
#: type name) under this environ key, for the capture record.
EXCEPTION_KEY = "shadowguard.exception"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = ..., /
    ) -> Callable[[bytes], object]: ...


WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


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


class Response:
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


class ShadowResponse(Response):
    """A shadow request's response: the scope is re-entered for every chunk the server
    pulls and for ``close()``, and ends when the server closes the body."""

    __slots__ = ("_iterator", "_request_scope", "_slot", "take")

    def __init__(
        self,
        environ: dict[str, Any],
        route_of: Callable[[dict[str, Any]], str | None],
        start_response: StartResponse,
        request_scope: RequestScope,
        take: Take | None,
        slot: Slot,
    ) -> None:
        self.environ = environ
        self.route_of = route_of
        self.server_start_response = start_response
        self.status = self.route = None
        self.start = perf_counter()
        self._iterator: Iterator[bytes] | None = None
        self._request_scope = request_scope
        self.take = take
        self._slot = slot

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        if self.take is not None:
            self.take.headers = headers
        return super().start_response(status, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __del__(self) -> None:
        # A server that drops the body without close() (werkzeug's development server when
        # the client resets the connection, a PEP 3333 violation elsewhere) would keep the
        # admission slot taken for the life of the process: give it back.
        if self.start is not None:
            self.start = None
            self._slot.release()
            if self.take is not None:
                _finish(self.take, self, self._request_scope.scope, None)

    def __next__(self) -> bytes:
        # A streaming generator runs here, in the server's frames: re-enter the scope.
        token = self._request_scope.enter()
        try:
            if self._iterator is None:
                self._iterator = iter(self._inner)
            chunk = next(self._iterator)
        except StopIteration:
            if self.take is not None:
                self.take.body_done()
            raise
        finally:
            self._request_scope.exit(token)
        if self.take is not None:
            self.take.body(chunk)
        return chunk

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

    def done(self, error: BaseException | None = None) -> None:
        start = self.start
        if start is None:
            return
        self.start = None
        try:
            self._request_scope.finish()
        finally:
            self._slot.release()
            telemetry.request_served(perf_counter() - start, True, self.route, self.status)
            if self.take is not None:
                _finish(self.take, self, self._request_scope.scope, error)
            log_summary(
                self.environ.get("REQUEST_METHOD", "?"),
                self.environ.get("PATH_INFO", "?"),
                self._request_scope.scope,
                self.status,
            )


class CapturedResponse(Response):
    """A primary request's response with capture on: the body is read as the server
    pulls it, and the request is recorded when the body ends or is closed."""

    __slots__ = ("_iterator", "take")

    take: Take
    _iterator: Iterator[bytes] | None

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        self.take.headers = headers
        return super().start_response(status, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        self._iterator = iter(self._inner)
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self._inner)
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self.take.body_done()
            raise
        self.take.body(chunk)
        return chunk

    def close(self) -> None:
        pending = self.start is not None
        try:
            Response.close(self)  # closes the body, records the duration
        finally:
            if pending:
                _finish(self.take, self, None, None)

    def done(self, error: BaseException | None = None) -> None:
        start = self.start
        if start is not None:
            self.start = None
            telemetry.request_served(perf_counter() - start, False, self.route, self.status)
            _finish(self.take, self, None, error)


def _finish(take: Take, response: Response, scope: Any, error: BaseException | str | None) -> None:
    """Hand the capture its status, route and exception (raised, or noted by a framework)."""
    take.status = response.status
    if error is None:
        noted = response.environ.get(EXCEPTION_KEY)
        if isinstance(noted, (BaseException, str)):
            error = noted
    take.finish(response.route, scope, error)


def request_path(environ: dict[str, Any]) -> str:
    """The request path; PEP 3333 gives it as latin-1 decoded bytes."""
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    if path.isascii():
        return str(path)
    try:
        return str(path.encode("latin-1").decode("utf-8"))
    except (UnicodeError, AttributeError):
        return str(path)
