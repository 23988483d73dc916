"""Capture for the Django middleware: the request's take, its body, its exception.

Django turns a view's exception into a 500 response inside ``get_response``: the
``got_request_exception`` signal notes it in ``request.META`` for the record.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from shadowguard.capture import Capture, Take
from shadowguard.middleware._wsgi_response import EXCEPTION_KEY

__all__ = ["copy_stream", "finish", "note_exception", "served", "start"]


def note_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    """``got_request_exception`` receiver: keep the exception being handled for the record."""
    exc = sys.exc_info()[1]
    meta = getattr(request, "META", None)
    if exc is not None and isinstance(meta, dict):
        meta[EXCEPTION_KEY] = exc


def start(capture: Capture, shadow: bool, request: Any) -> Take:
    """The take of a request that starts."""
    meta = request.META
    return capture.start(shadow, request.method or "", request.path, meta.get("HTTP_X_REQUEST_ID"))


def finish(
    take: Take, request: Any, response: Any, route: str | None, scope: Any, error: Any
) -> None:
    """The request ended (its body too): the status, headers, exception, and off it goes."""
    if response is not None:
        take.status = response.status_code
        take.headers = response.headers
        if not response.streaming:
            take.body(response.content)
    if error is None:
        error = request.META.get(EXCEPTION_KEY)
    take.finish(route, scope, error if isinstance(error, (BaseException, str)) else None)


def served(take: Take, request: Any, response: Any, route: str | None, error: Any) -> None:
    """A primary request's response: finish now, or when its streaming body ends."""
    if response is None or not response.streaming:
        finish(take, request, response, route, None, error)
        return

    def done() -> None:
        finish(take, request, response, route, None, None)

    copy_stream(take, response, done)
    # A body never read (HEAD, a client gone) still ends when Django closes the response.
    response._resource_closers.append(done)


def copy_stream(take: Take, response: Any, done: Callable[[], None] | None = None) -> None:
    """Copy a streaming body into ``take`` as the server reads it; ``done`` at its end."""
    if response.is_async:
        response.streaming_content = _acopy(response.streaming_content, take, done)
    else:
        response.streaming_content = _copy(response.streaming_content, take, done)


def _copy(content: Iterable[bytes], take: Take, done: Callable[[], None] | None) -> Iterator[bytes]:
    try:
        for chunk in content:
            take.body(chunk)
            yield chunk
        take.body_done()
    finally:
        if done is not None:
            done()


async def _acopy(
    content: AsyncIterator[bytes], take: Take, done: Callable[[], None] | None
) -> AsyncIterator[bytes]:
    try:
        async for chunk in content:
            take.body(chunk)
            yield chunk
        take.body_done()
    finally:
        if done is not None:
            done()
