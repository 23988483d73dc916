"""Django middleware (sync and async): shadow requests run in rolled-back transactions.

Add it first in ``MIDDLEWARE``::

    MIDDLEWARE = ["shadowguard.middleware.django.ShadowGuardMiddleware", ...]

Options come from the ``SHADOWGUARD`` setting, a dict of :class:`~shadowguard.Settings`
fields; ``SHADOWGUARD_DATABASES`` (default: every alias) limits the aliases opened. Its
``"capture"`` key (a capture URL; default ``SHADOWGUARD_CAPTURE``) records each request
for ``shadowguard compare``.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpResponse

from shadowguard.capture import Take
from shadowguard.contract import (
    PROCESS,
    Detection,
    RequestScope,
    settings_or_defaults,
    telemetry,
)
from shadowguard.middleware import _django_capture as capturing
from shadowguard.middleware._admission import SHED_BODY, admit, environ_timing, shed_headers
from shadowguard.middleware._common import Precheck, detect_shadow, environ_headers, start_up
from shadowguard.middleware._django_shadow import ShadowRequest, route_of

__all__ = ["ShadowGuardMiddleware"]


def _shed_response(reason: str) -> Any:
    response = HttpResponse(SHED_BODY, status=503, headers=dict(shed_headers(reason)))
    # Django logs every 5xx response as an error unless it was logged already: a burst of
    # shed requests is logged once, by us (``django.utils.log.log_response`` reads this).
    response._has_been_logged = True
    return response


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
        capture = options.pop("capture", None)
        self._settings, self._precheck, self._capture = start_up(options, capture)
        if self._capture is not None:
            from django.core.signals import got_request_exception

            got_request_exception.connect(capturing.note_exception, dispatch_uid="shadowguard")
        databases = getattr(settings, "SHADOWGUARD_DATABASES", None)
        self._databases = list(databases) if databases is not None else None
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
        if detection is not None:
            return self._shadow(request, detection, start)
        take = self._take(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            self._served(request, start, take, None, exc)
            raise
        self._served(request, start, take, response, None)
        return response

    async def __acall__(self, request: Any) -> Any:
        detection = self._detect(request.META)
        if detection is None and not telemetry.collecting and self._capture is None:
            return await self.get_response(request)  # nothing would keep the duration
        start = perf_counter()
        if detection is not None:
            return await self._ashadow(request, detection, start)
        take = self._take(request)
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            self._served(request, start, take, None, exc)
            raise
        self._served(request, start, take, response, None)
        return response

    def _take(self, request: Any) -> Take | None:
        return None if self._capture is None else capturing.start(self._capture, False, request)

    @staticmethod
    def _served(
        request: Any, start: float, take: Take | None, response: Any, error: BaseException | None
    ) -> None:
        """Time a primary request, and record its capture (``take``) when capture is on."""
        route = route_of(request)
        status = getattr(response, "status_code", None)
        telemetry.request_served(perf_counter() - start, False, route, status)
        if take is not None:
            capturing.served(take, request, response, route, error)

    def _shadow(self, request: Any, detection: Detection, start: float) -> Any:
        shadow = self._admitted(request, detection, start)
        if isinstance(shadow, HttpResponse):
            return shadow
        try:
            with shadow.scope.inside():
                shadow.begin(self._databases)
                shadow.response = response = self.get_response(request)
        except BaseException as exc:
            shadow.error = exc
            shadow.finish()
            raise
        if response.streaming:
            shadow.stream(sync_to_async(shadow.finish))
        else:
            shadow.finish()
        return response

    async def _ashadow(self, request: Any, detection: Detection, start: float) -> Any:
        shadow = self._admitted(request, detection, start)
        if isinstance(shadow, HttpResponse):
            return shadow
        try:
            with shadow.scope.inside():
                # Django runs one request's ORM calls on one thread: thread-sensitive.
                await sync_to_async(shadow.begin, thread_sensitive=True)(self._databases)
                shadow.response = response = await self.get_response(request)
        except BaseException as exc:
            shadow.error = exc
            await shadow.afinish()
            raise
        if response.streaming:
            shadow.stream(shadow.afinish)
        else:
            await shadow.afinish()
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

    def _admitted(
        self, request: Any, detection: Detection, start: float
    ) -> ShadowRequest | HttpResponse:
        """Admit a shadow request (released when it ends), or the 503 that sheds it."""
        settings = self._settings or PROCESS.settings or settings_or_defaults()
        slot = admit(settings, environ_timing(request.META, settings))
        if isinstance(slot, str):
            return _shed_response(slot)
        take = None if self._capture is None else capturing.start(self._capture, True, request)
        return ShadowRequest(
            request, RequestScope(f"request:{detection.signal}"), start, take, slot
        )
