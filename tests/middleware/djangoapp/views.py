"""Views that write through the Django ORM and note what they saw in ``SEEN``."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse

from shadowguard import ShadowSideEffectBlocked, current_scope, is_shadow, propagate
from tests.middleware._helpers import closing_body
from tests.middleware.djangoapp.models import Order

SEEN: list[Any] = []
ON_COMMIT: list[str] = []


def order(request: HttpRequest, ref: str) -> JsonResponse:
    SEEN.append(("view", is_shadow(), current_scope()))
    Order.objects.create(ref=ref)
    Order.objects.using("other").create(ref=ref)
    transaction.on_commit(lambda: ON_COMMIT.append(ref))
    try:
        with transaction.atomic():
            Order.objects.create(ref=ref)  # duplicate: the database rejects it
    except IntegrityError:
        duplicate_rejected = True
    else:
        duplicate_rejected = False
    return JsonResponse(
        {
            "seen": Order.objects.filter(ref=ref).count(),
            "seen_other": Order.objects.using("other").filter(ref=ref).count(),
            "duplicate_rejected": duplicate_rejected,
        }
    )


def atomic(request: HttpRequest, ref: str) -> JsonResponse:
    with transaction.atomic():
        Order.objects.create(ref=f"{ref}-1")
        with transaction.atomic():
            Order.objects.create(ref=f"{ref}-2")
        transaction.on_commit(lambda: ON_COMMIT.append(ref))
    return JsonResponse({"n": Order.objects.filter(ref__startswith=ref).count()})


def durable(request: HttpRequest, ref: str) -> JsonResponse:
    with transaction.atomic(durable=True):
        Order.objects.create(ref=ref)
    return JsonResponse({"ok": True})


def stream(request: HttpRequest, ref: str) -> StreamingHttpResponse:
    def body() -> Iterator[str]:
        for i in range(3):
            SEEN.append(("chunk", is_shadow(), current_scope()))
            Order.objects.create(ref=f"{ref}-{i}")
            yield f"{Order.objects.filter(ref__startswith=ref).count()},"

    return StreamingHttpResponse(body())


def stream_cleanup(request: HttpRequest, ref: str) -> StreamingHttpResponse:
    """A generator whose clean-up runs when Django closes a body read only in part."""

    def cleanup() -> None:
        SEEN.append(("cleanup", is_shadow(), current_scope()))
        Order.objects.create(ref=f"{ref}-cleanup")

    return StreamingHttpResponse(closing_body(cleanup, "first,", "second,"))


async def async_order(request: HttpRequest, ref: str) -> JsonResponse:
    SEEN.append(("async", is_shadow(), current_scope()))
    await Order.objects.acreate(ref=ref)
    return JsonResponse({"seen": await Order.objects.filter(ref=ref).acount()})


async def async_stream(request: HttpRequest, ref: str) -> StreamingHttpResponse:
    async def body() -> AsyncIterator[str]:
        for i in range(2):
            SEEN.append(("achunk", is_shadow(), current_scope()))
            await Order.objects.acreate(ref=f"{ref}-{i}")
            yield "x"

    return StreamingHttpResponse(body())


def thread(request: HttpRequest, ref: str) -> JsonResponse:
    """A worker thread has its own connection, outside the request's shadow transaction."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            Order.objects.create(ref=ref)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    worker = threading.Thread(target=propagate(work))
    worker.start()
    worker.join()
    return JsonResponse({"error": type(errors[0]).__name__ if errors else None})


def mariadb_ddl(request: HttpRequest, ref: str) -> JsonResponse:
    """A write, then DDL, before which MariaDB commits the open transaction."""
    Order.objects.using("mariadb").create(ref=ref)
    try:
        with connections["mariadb"].cursor() as cursor:
            cursor.execute(f"CREATE TABLE sg_django_ddl_{ref.lower()} (a int)")
    except ShadowSideEffectBlocked as exc:
        return JsonResponse({"error": type(exc).__name__})
    return JsonResponse({"error": None})


def raw_commit(request: HttpRequest, ref: str) -> JsonResponse:
    """A write, then a commit on the driver's own connection, below Django."""
    Order.objects.create(ref=ref)
    try:
        connections["default"].connection.commit()
    except ShadowSideEffectBlocked as exc:
        return JsonResponse({"error": type(exc).__name__})
    return JsonResponse({"error": None})


#: For the admission tests: slow views count themselves and wait until released.
HOLD: dict[str, Any] = {"started": 0, "release": threading.Event(), "async_release": None}


def slow(request: HttpRequest, ref: str) -> JsonResponse:
    HOLD["started"] += 1
    assert HOLD["release"].wait(10)
    return JsonResponse({"ok": True})


async def async_slow(request: HttpRequest, ref: str) -> JsonResponse:
    HOLD["started"] += 1
    await HOLD["async_release"].wait()
    return JsonResponse({"ok": True})


def boom(request: HttpRequest, ref: str) -> JsonResponse:
    """Django answers 500 itself; the capture record still names the exception."""
    raise ValueError(ref)
