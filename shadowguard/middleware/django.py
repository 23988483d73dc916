"""Django middleware (sync and async): shadow requests run in rolled-back transactions.

Add it first in ``MIDDLEWARE``::

    MIDDLEWARE = ["shadowguard.middleware.django.ShadowGuardMiddleware", ...]

Options come from the ``SHADOWGUARD`` setting, a dict of :class:`~shadowguard.Settings`
fields; ``SHADOWGUARD_DATABASES`` (default: every alias) limits the aliases opened. Its
``"capture"`` key (a capture URL; default ``SHADOWGUARD_CAPTURE``) records each request
for ``shadowguard compare``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from time import perf_counter
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpResponse

from shadowguard.capture import Capture, Take, capture_from
from shadowguard.contract import (
    PROCESS,
    Detection,
    RequestScope,
    settings_or_defaults,
    telemetry,
)
from shadowguard.integrations.django import ShadowTransactions
from shadowguard.middleware import _django_capture as capturing
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

__all__ = ["ShadowGuardMiddleware"]


def _shed_response(reason: str) -> Any:
    response = HttpResponse(SHED_BODY, status=503, headers=dict(shed_headers(reason)))
    # Django logs every 5xx response as an error unless it was logged already: a burst of
    # shed requests is logged once, by us (``django.utils.log.log_response`` reads this).
    response._has_been_logged = True
    return response


def _route(request: Any) -> str | None:
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    return route if isinstance(route, str) and route else None


def _stream(
    content: Iterable[bytes], request_scope: RequestScope, done: Callable[[], None]
) -> Iterator[bytes]:
    """Yield the body chunk by chunk, each produced inside the request's scope."""
    try:
        iterator = iter(content)
        while True:
            token = request_scope.enter()
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            finally:
                request_scope.exit(token)
            yield chunk
    finally:
        close = getattr(content, "close", None)
        try:
            if close is not None:
                token = request_scope.enter()
                try:
                    close()
                finally:
                    request_scope.exit(token)
        finally:
            done()


async def _astream(
    content: AsyncIterator[bytes], request_scope: RequestScope, done: Callable[[], Any]
) -> AsyncIterator[bytes]:
    try:
        iterator = aiter(content)
        while True:
            token = request_scope.enter()
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            finally:
                request_scope.exit(token)
            yield chunk
    finally:
        aclose = getattr(content, "aclose", None)
        try:
            if aclose is not None:
                token = request_scope.enter()
                try:
                    await aclose()
                finally:
                    request_scope.exit(token)
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
            token = request_scope.enter()
            try:
                for closer in closers:
                    with contextlib.suppress(Exception):  # as HttpResponseBase.close() does
                        closer()
            finally:
                request_scope.exit(token)
        finally:
            done()

    response._resource_closers[:] = [close]


class ShadowGuardMiddleware:
    """Turn each Django request into a primary request or a shadow scope.

    In a shadow request every database alias runs in a transaction rolled back when the
    request ends, at the end of a streaming body included; writes are validated by the
    database and visible to later reads of the same request, nothing commits, and
    ``transaction.on_commit`` callbacks do not run.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from django.conf import settings

        self.get_response = get_response
        options = dict(getattr(settings, "SHADOWGUARD", None) or {})
        self._capture: Capture | None = capture_from(options.pop("capture", None))
        if self._capture is not None:
            from django.core.signals import got_request_exception

            got_request_exception.connect(capturing.note_exception, dispatch_uid="shadowguard")
        self._settings = settings_from_options(options)
        databases = getattr(settings, "SHADOWGUARD_DATABASES", None)
        self._databases = list(databases) if databases is not None else None
        self._precheck = Precheck(self._settings or settings_or_defaults())
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self.__acall__(request)
        detection = self._detect(request.META)
        if detection is None and not telemetry.collecting and self._capture is None:
            return self.get_response(request)  # nothing would keep the duration
        start = perf_counter()
        if detection is None:
            if self._capture is not None:
                return self._captured(request, self._capture)
            status = None
            try:
                response = self.get_response(request)
                status = response.status_code
                return response
            finally:
                telemetry.request_served(perf_counter() - start, False, _route(request), status)

        slot = self._admit(request)
        if isinstance(slot, str):
            return _shed_response(slot)
        request_scope = RequestScope(f"request:{detection.signal}")
        take = self._take(request)
        response = None
        error: BaseException | None = None

        def done() -> None:
            self._finish(request, request_scope, start, response, take, error, slot)

        token = request_scope.enter()
        try:
            transactions = ShadowTransactions(self._databases)
            transactions.begin()
            request_scope.scope.on_exit(transactions.end)
            response = self.get_response(request)
        except BaseException as exc:
            request_scope.exit(token)
            error = exc
            done()
            raise
        request_scope.exit(token)
        if response.streaming:
            if response.is_async:
                response.streaming_content = _astream(
                    response.streaming_content, request_scope, sync_to_async(done)
                )
            else:
                response.streaming_content = _stream(
                    response.streaming_content, request_scope, done
                )
            if take is not None:
                capturing.copy_stream(take, response)
            _close_in_scope(response, request_scope, done)
        else:
            done()
        return response

    def _captured(self, request: Any, capture: Capture) -> Any:
        """A primary request with capture on (and its duration, when an SDK collects)."""
        take = capturing.start(capture, False, request)
        response: Any = None
        error: BaseException | None = None
        try:
            response = self.get_response(request)
            return response
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._served(request, take, response, error)

    async def _acaptured(self, request: Any, capture: Capture) -> Any:
        take = capturing.start(capture, False, request)
        response: Any = None
        error: BaseException | None = None
        try:
            response = await self.get_response(request)
            return response
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._served(request, take, response, error)

    @staticmethod
    def _served(request: Any, take: Take, response: Any, error: BaseException | None) -> None:
        route = _route(request)
        status = getattr(response, "status_code", None)
        telemetry.request_served(perf_counter() - take.start, False, route, status)
        capturing.served(take, request, response, route, error)

    def _take(self, request: Any) -> Take | None:
        return None if self._capture is None else capturing.start(self._capture, True, request)

    async def __acall__(self, request: Any) -> Any:
        detection = self._detect(request.META)
        if detection is None and not telemetry.collecting and self._capture is None:
            return await self.get_response(request)  # nothing would keep the duration
        start = perf_counter()
        if detection is None:
            if self._capture is not None:
                return await self._acaptured(request, self._capture)
            status = None
            try:
                response = await self.get_response(request)
                status = response.status_code
                return response
            finally:
                telemetry.request_served(perf_counter() - start, False, _route(request), status)

        slot = self._admit(request)
        if isinstance(slot, str):
            return _shed_response(slot)
        request_scope = RequestScope(f"request:{detection.signal}")
        take = self._take(request)
        response = None
        error: BaseException | None = None

        # Django runs ORM calls of one request on one thread: begin, end and the
        # request's own queries all go through thread-sensitive sync_to_async.
        async def done() -> None:
            if request_scope.finished:
                return
            try:
                await sync_to_async(request_scope.finish, thread_sensitive=True)()
            finally:
                self._record(request, request_scope, start, response, take, error, slot)

        def done_in_thread() -> None:
            self._finish(request, request_scope, start, response, take, error, slot)

        token = request_scope.enter()
        try:
            transactions = ShadowTransactions(self._databases)
            await sync_to_async(transactions.begin, thread_sensitive=True)()
            request_scope.scope.on_exit(transactions.end)
            response = await self.get_response(request)
        except BaseException as exc:
            request_scope.exit(token)
            error = exc
            await done()
            raise
        request_scope.exit(token)
        if response.streaming:
            if response.is_async:
                response.streaming_content = _astream(
                    response.streaming_content, request_scope, done
                )
            else:
                # Django consumes a sync body in a thread-sensitive worker: end there.
                response.streaming_content = _stream(
                    response.streaming_content, request_scope, done_in_thread
                )
            if take is not None:
                capturing.copy_stream(take, response)
            # Django's ASGI handler closes the response on the request's thread.
            _close_in_scope(response, request_scope, done_in_thread)
        else:
            await done()
        return response

    def _detect(self, meta: dict[str, Any]) -> Detection | None:
        # Without a SHADOWGUARD setting, the process settings of the moment.
        settings = self._settings or PROCESS.settings or settings_or_defaults()
        precheck = self._precheck
        if precheck.settings is not settings:
            precheck = self._precheck = Precheck(settings)
        if not precheck.environ(meta):
            return None
        return detect_shadow(environ_headers(meta, settings), settings)

    def _admit(self, request: Any) -> Slot | str:
        """Admit a shadow request (its slot, released when recorded) or shed it (the reason)."""
        settings = self._settings or PROCESS.settings or settings_or_defaults()
        return admit(settings, environ_timing(request.META, settings))

    @classmethod
    def _finish(
        cls,
        request: Any,
        request_scope: RequestScope,
        start: float,
        response: Any,
        take: Take | None,
        error: BaseException | None,
        slot: Slot,
    ) -> None:
        """End a shadow request once (on the thread that owns its connections) and record it."""
        if request_scope.finished:
            return
        try:
            request_scope.finish()
        finally:
            cls._record(request, request_scope, start, response, take, error, slot)

    @staticmethod
    def _record(
        request: Any,
        request_scope: RequestScope,
        start: float,
        response: Any,
        take: Take | None,
        error: BaseException | None,
        slot: Slot,
    ) -> None:
        slot.release()  # called once per admitted request, when it ends
        status = getattr(response, "status_code", None)
        route = _route(request)
        telemetry.request_served(perf_counter() - start, True, route, status)
        if take is not None:
            capturing.finish(take, request, response, route, request_scope.scope, error)
        log_summary(request.method or "?", request.path, request_scope.scope, status)
