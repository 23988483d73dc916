"""ASGI capture on a FastAPI application, in process: what each record holds."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from shadowguard.capture import REDACTED, CaptureSettings
from tests.capture._apps import ORDER, build_asgi
from tests.capture._support import only, records

SHADOW = {"x-shadow-request": "1"}


async def get(app: Any, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
        return await client.get(path, headers=headers)


@pytest.mark.asyncio
async def test_a_primary_json_response_is_recorded_and_redacted(sqlite_url: str) -> None:
    before = time.time()
    response = await get(build_asgi(capture=sqlite_url), "/orders/7", **{"x-request-id": "rq-1"})
    assert response.json()["password"] == "hunter2"  # the client gets the real body
    record = only(sqlite_url)
    assert record["request_id"] == "rq-1"
    assert record["request_id_generated"] is False
    assert record["label"] == "primary"
    assert (record["method"], record["route"], record["path"]) == (
        "GET",
        "/orders/{order_id}",
        "/orders/7",
    )
    assert record["status"] == 200
    assert record["headers"] == {"content-type": "application/json"}
    assert record["body_kind"] == "json"
    assert record["body_bytes"] == len(response.content)
    assert record["body"] == {
        "id": 7,
        "items": [{"sku": "A-1", "price": 12.5, "token": REDACTED}],
        "password": REDACTED,
        "customer": {"name": "Ada", "accessToken": REDACTED, "card": {"card_number": REDACTED}},
        "span": ORDER["span"],
    }
    assert before <= record["started_at"] <= time.time()
    assert 0 < record["duration_ms"] < 10_000
    assert record["suppressions"] == {}
    assert record["validation_errors"] == []
    assert record["exception"] is None


@pytest.mark.asyncio
async def test_a_shadow_request_is_recorded_with_its_suppressions(jsonl_url: str) -> None:
    await get(build_asgi(capture=jsonl_url), "/orders/8", **SHADOW, **{"x-request-id": "rq-2"})
    record = only(jsonl_url)
    assert (record["label"], record["request_id"]) == ("shadow", "rq-2")
    assert record["suppressions"] == {"call": 2}
    assert record["body"]["password"] == REDACTED


@pytest.mark.asyncio
async def test_a_missing_request_id_is_generated_and_said_so(jsonl_url: str) -> None:
    app = build_asgi(capture=jsonl_url)
    await get(app, "/text")
    await get(app, "/text", **{"x-request-id": "  "})
    first, second = records(jsonl_url)
    for record in (first, second):
        assert record["request_id_generated"] is True
        uuid.UUID(record["request_id"])
    assert first["request_id"] != second["request_id"]


@pytest.mark.asyncio
async def test_non_json_bodies(jsonl_url: str) -> None:
    app = build_asgi(capture=jsonl_url)
    for path in ("/text", "/binary", "/empty", "/stream"):
        await get(app, path, **{"x-request-id": path})
    by_id = {r["request_id"]: r for r in records(jsonl_url)}
    assert by_id["/text"]["body_kind"] == "text"
    assert by_id["/text"]["body"] == "plain words, not JSON"
    assert (by_id["/binary"]["body_kind"], by_id["/binary"]["body"]) == ("binary", None)
    assert by_id["/binary"]["body_bytes"] == 256
    assert (by_id["/empty"]["status"], by_id["/empty"]["body_kind"]) == (204, "empty")
    assert by_id["/stream"]["body"] == {"parts": [1, 2, 3]}  # three chunks, one document


@pytest.mark.asyncio
async def test_the_body_bound(jsonl_url: str) -> None:
    settings = CaptureSettings(url=jsonl_url, max_body_bytes=1000)
    app = build_asgi(capture=settings)
    await get(app, "/big/1000", **{"x-request-id": "at"})
    await get(app, "/big/1001", **{"x-request-id": "over"})
    await get(app, "/big/200000", **{"x-request-id": "huge"})
    by_id = {r["request_id"]: r for r in records(jsonl_url)}
    assert by_id["at"]["body_kind"] == "json"
    assert len(by_id["at"]["body"]) == 998
    for name, size in (("over", 1001), ("huge", 200_000)):
        assert (by_id[name]["body_kind"], by_id[name]["body"]) == ("truncated", None)
        assert by_id[name]["body_bytes"] == size


@pytest.mark.asyncio
async def test_an_exception_is_named(jsonl_url: str) -> None:
    response = await get(build_asgi(capture=jsonl_url), "/boom", **SHADOW)
    assert response.status_code == 500
    record = only(jsonl_url)
    # Starlette answers 500 outside the middleware: the application never started one.
    assert (record["status"], record["exception"]) == (None, "LookupError")
    assert record["route"] == "/boom"


@pytest.mark.asyncio
async def test_a_label_of_ones_own_and_selected_headers(sqlite_url: str) -> None:
    settings = CaptureSettings(
        url=sqlite_url, label="candidate", headers=("content-length", "set-cookie")
    )
    app = build_asgi(capture=settings)
    await get(app, "/text")
    await get(app, "/text", **SHADOW)
    found = records(sqlite_url)
    assert [r["label"] for r in found] == ["candidate", "candidate"]
    assert found[0]["headers"] == {"content-length": "21"}


@pytest.mark.asyncio
async def test_shed_shadow_requests_are_not_recorded(jsonl_url: str) -> None:
    app = build_asgi(capture=jsonl_url, max_concurrent_shadow=0)
    response = await get(app, "/text", **SHADOW)
    assert response.status_code == 503
    await get(app, "/text")
    assert [r["label"] for r in records(jsonl_url)] == ["primary"]
