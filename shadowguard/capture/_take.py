"""One request while it runs: what the middleware notes, with as little work as it can.

The middleware makes a :class:`Take` when the request starts, feeds it the response
status, headers and body chunks, and calls :meth:`Take.finish` once the body is done.
Everything else (finding the request id, selecting and redacting headers, decoding the
body, reading the shadow scope) waits for the writer thread: see ``_record``.
"""

from __future__ import annotations

import json
from time import perf_counter, time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shadowguard.capture._capture import Capture
    from shadowguard.contract import Scope

__all__ = ["Take"]


class Take:
    """One request's capture in progress; handed to the writer by :meth:`finish`.

    ``request_id`` is the ``x-request-id`` value when the middleware could read it
    cheaply (WSGI, Django), else None and ``request_headers`` holds the ASGI header list
    for the writer to search. ``chunks`` is None once the body outgrew the bound; ``size``
    still counts every byte.
    """

    __slots__ = (
        "capture",
        "chunks",
        "end",
        "exception",
        "finished",
        "headers",
        "label",
        "method",
        "path",
        "request_headers",
        "request_id",
        "route",
        "scope",
        "size",
        "start",
        "started_at",
        "status",
    )

    def __init__(
        self,
        capture: Capture,
        label: str,
        method: str,
        path: str,
        request_id: str | None,
        request_headers: Any = None,
    ) -> None:
        self.capture = capture
        self.label = label
        self.method = method
        self.path = path
        self.request_id = request_id
        self.request_headers = request_headers
        self.started_at = time()
        self.start = perf_counter()
        self.end: float | None = None
        self.status: int | None = None
        #: The response headers as the framework gave them: ASGI byte pairs, WSGI string
        #: pairs, or a mapping (Django); selected in the writer.
        self.headers: Any = ()
        self.chunks: list[bytes] | None = []
        self.size = 0
        self.route: str | None = None
        self.scope: Scope | None = None
        self.exception: str | None = None
        self.finished = False

    def body(self, chunk: bytes) -> None:
        """Note a chunk of the response body (kept while the total is within the bound)."""
        size = self.size + len(chunk)
        self.size = size
        chunks = self.chunks
        if chunks is not None:
            if size <= self.capture.max_body_bytes:
                # bytes are immutable: keeping a reference is the copy. Anything else
                # (a bytearray, a memoryview) may be reused by the application.
                chunks.append(chunk if type(chunk) is bytes else bytes(chunk))
            else:
                self.chunks = None

    def result(self, value: Any) -> None:
        """Keep ``value`` (a handler's or a function's outcome) as the body: JSON when it
        encodes, else its ``repr`` as text."""
        try:
            body = json.dumps(value, allow_nan=True).encode()
            self.headers = {"content-type": "application/json"}
        except (TypeError, ValueError):
            body = repr(value).encode("utf-8", "replace")
            self.headers = {"content-type": "text/plain; charset=utf-8"}
        self.body(body)

    def body_done(self) -> None:
        """The last byte of the body was handed to the server: the duration ends here."""
        if self.end is None:
            self.end = perf_counter()

    def finish(
        self,
        route: str | None,
        scope: Scope | None = None,
        exception: BaseException | str | None = None,
    ) -> None:
        """The request is over: queue it for the writer (once). Never raises, never blocks."""
        if self.finished:
            return
        self.finished = True
        if self.end is None:
            self.end = perf_counter()
        self.route = route
        self.scope = scope
        if exception is not None:
            self.exception = exception if isinstance(exception, str) else type_name(exception)
        self.capture.submit(self)


def type_name(exc: BaseException) -> str:
    """The qualified name of ``exc``'s type (``sqlalchemy.exc.IntegrityError``; builtins bare)."""
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
