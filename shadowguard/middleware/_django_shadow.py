"""One admitted Django shadow request: its scope, transactions, capture and slot, ended once.

The request ends when its response is complete: at once for a plain response, after the
last chunk (or when Django closes the response) for a streaming one. Ending rolls back the
request's transactions on the thread that owns their connections, then records it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from asgiref.sync import sync_to_async

from shadowguard.capture import Take
from shadowguard.contract import RequestScope, telemetry
from shadowguard.integrations.django import ShadowTransactions
from shadowguard.middleware import _django_capture as capturing
from shadowguard.middleware._admission import Slot
from shadowguard.middleware._common import log_summary

__all__ = ["ShadowRequest", "route_of"]

_END: Any = object()  # the end of a body iterator


def route_of(request: Any) -> str | None:
    """The URL pattern Django resolved (``orders/<int:pk>/``), or None."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    return route if isinstance(route, str) and route else None


@dataclass(slots=True)
class ShadowRequest:
    """The state of one shadow request, from admission to its record."""

    request: Any
    scope: RequestScope
    start: float
    take: Take | None
    slot: Slot
    response: Any = None
    error: BaseException | None = None

    def begin(self, databases: list[str] | None) -> None:
        """Open the request's rolled-back transactions (every alias, or ``databases``)."""
        transactions = ShadowTransactions(databases)
        transactions.begin()
        self.scope.scope.on_exit(transactions.end)

    def finish(self) -> None:
        """End the request once, on the calling thread, and record it."""
        if self.scope.finished:
            return
        try:
            self.scope.finish()
        finally:
            self.record()

    async def afinish(self) -> None:
        """End the request once from async code: Django runs one request's ORM calls on
        one thread, so the rollback goes through thread-sensitive ``sync_to_async``."""
        if self.scope.finished:
            return
        try:
            await sync_to_async(self.scope.finish, thread_sensitive=True)()
        finally:
            self.record()

    def record(self) -> None:
        self.slot.release()  # called once per admitted request, when it ends
        request, response = self.request, self.response
        status = getattr(response, "status_code", None)
        route = route_of(request)
        telemetry.request_served(perf_counter() - self.start, True, route, status)
        if self.take is not None:
            capturing.finish(self.take, request, response, route, self.scope.scope, self.error)
        log_summary(request.method or "?", request.path, self.scope.scope, status)

    def stream(self, adone: Callable[[], Awaitable[None]]) -> None:
        """Make the streaming response produce and close its body inside the scope.

        ``adone`` ends the request after an async body. A sync body, and the closers, end it
        on the thread that runs them (Django's ASGI handler consumes a sync body, and
        closes the response, on the request's thread).
        """
        response = self.response
        if response.is_async:
            response.streaming_content = _astream(response.streaming_content, self.scope, adone)
        else:
            response.streaming_content = _stream(
                response.streaming_content, self.scope, self.finish
            )
        if self.take is not None:
            capturing.copy_stream(self.take, response)
        _close_in_scope(response, self.scope, self.finish)


def _stream(
    content: Iterable[bytes], request_scope: RequestScope, done: Callable[[], None]
) -> Iterator[bytes]:
    """Yield the body chunk by chunk, each produced inside the request's scope."""
    try:
        iterator = iter(content)
        while True:
            with request_scope.inside():
                chunk = next(iterator, _END)
            if chunk is _END:
                return
            yield chunk
    finally:
        try:
            close = getattr(content, "close", None)
            if close is not None:
                with request_scope.inside():
                    close()
        finally:
            done()


async def _astream(
    content: AsyncIterator[bytes], request_scope: RequestScope, done: Callable[[], Any]
) -> AsyncIterator[bytes]:
    try:
        iterator = aiter(content)
        while True:
            with request_scope.inside():
                chunk = await anext(iterator, _END)
            if chunk is _END:
                return
            yield chunk
    finally:
        try:
            aclose = getattr(content, "aclose", None)
            if aclose is not None:
                with request_scope.inside():
                    await aclose()
        finally:
            await done()


def _close_in_scope(response: Any, request_scope: RequestScope, done: Callable[[], None]) -> None:
    """Run the response's closers (the view's generator among them) inside the scope, then end.

    A body never iterated (HEAD, a client gone early) never runs our generator's clean-up,
    and a view generator's ``finally`` runs when Django closes the response: both belong
    to the shadow request. Django has no public hook for this; ``_resource_closers`` is
    what ``HttpResponseBase.close()`` runs.
    """
    closers = list(response._resource_closers)

    def close() -> None:
        try:
            with request_scope.inside():
                for closer in closers:
                    with contextlib.suppress(Exception):  # as HttpResponseBase.close() does
                        closer()
        finally:
            done()

    response._resource_closers[:] = [close]
