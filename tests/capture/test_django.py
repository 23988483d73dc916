"""Django capture through the test client: route templates, streaming bodies, exceptions."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import AsyncClient, Client, override_settings

from tests.capture._support import records

# Importing the test app's databases sets Django up with its settings.
from tests.middleware.djangoapp import databases
from tests.middleware.djangoapp.databases import Rows

django_databases = databases.django_databases
rows = databases.rows

SHADOW = {"HTTP_X_SHADOW_REQUEST": "1"}
pytestmark = pytest.mark.postgres


def by_key(url: str) -> dict[tuple[str, str], Any]:
    return {(r["request_id"], r["label"]): r for r in records(url)}


def test_sync_requests_primary_and_shadow(rows: Rows, sqlite_url: str) -> None:
    with override_settings(SHADOWGUARD={"capture": sqlite_url}):
        client = Client(raise_request_exception=False)
        # Refs differ per side: the primary's rows are real, and the shadow would hit them.
        for side, extra in (("p", {}), ("s", SHADOW)):
            client.post(f"/orders/C{side}/", HTTP_X_REQUEST_ID="d-1", **extra)
            response = client.get(f"/stream/S{side}/", HTTP_X_REQUEST_ID="d-2", **extra)
            assert b"".join(response.streaming_content) == b"1,2,3,"
            response.close()
            assert client.get("/boom/x/", HTTP_X_REQUEST_ID="d-3", **extra).status_code == 500
    found = by_key(sqlite_url)
    assert len(found) == 6
    primary, shadow = found["d-1", "primary"], found["d-1", "shadow"]
    assert primary["route"] == shadow["route"] == "orders/<str:ref>/"
    assert (primary["method"], primary["path"], primary["status"]) == ("POST", "/orders/Cp/", 200)
    assert primary["body"] == {"seen": 1, "seen_other": 1, "duplicate_rejected": True}
    assert shadow["body"] == primary["body"]
    assert (primary["suppressions"], shadow["suppressions"]) == ({}, {"db.commit": 2})
    # The shadow's writes were rolled back; its records were written all the same.
    assert rows.postgres() == ["Cp", "Sp-0", "Sp-1", "Sp-2"]
    for label in ("primary", "shadow"):
        streamed = found["d-2", label]
        assert (streamed["body_kind"], streamed["body"]) == ("text", "1,2,3,")
        assert streamed["route"] == "stream/<str:ref>/"
        boom = found["d-3", label]
        assert (boom["status"], boom["exception"]) == (500, "ValueError")
    assert found["d-2", "shadow"]["suppressions"] == {"db.commit": 3}


def test_a_streaming_body_never_read_is_still_recorded(rows: Rows, jsonl_url: str) -> None:
    with override_settings(SHADOWGUARD={"capture": jsonl_url}):
        client = Client()
        for extra in ({}, SHADOW):
            client.head("/stream/U/", HTTP_X_REQUEST_ID="d-4", **extra).close()
    assert sorted(r["label"] for r in records(jsonl_url)) == ["primary", "shadow"]


@pytest.mark.asyncio
async def test_async_requests(rows: Rows, jsonl_url: str) -> None:
    with override_settings(SHADOWGUARD={"capture": jsonl_url}):
        client = AsyncClient()
        # AsyncClient takes request headers as headers= (its extra keys go to the scope).
        for side, marker in (("p", {}), ("s", {"x-shadow-request": "1"})):
            headers = {"x-request-id": "d-5", **marker}
            response = await client.get(f"/async-stream/A{side}/", headers=headers)
            assert b"".join([c async for c in response.streaming_content]) == b"xx"
            await client.post(f"/async/B{side}/", headers={**headers, "x-request-id": "d-6"})
    found = by_key(jsonl_url)
    assert found["d-5", "primary"]["body"] == found["d-5", "shadow"]["body"] == "xx"
    assert found["d-5", "shadow"]["suppressions"] == {"db.commit": 2}
    assert found["d-6", "primary"]["body"] == {"seen": 1}
    assert found["d-6", "shadow"]["route"] == "async/<str:ref>/"


def test_a_bad_capture_setting_stops_django_at_start_up(rows: Rows) -> None:
    from shadowguard import ConfigError

    with (
        override_settings(SHADOWGUARD={"capture": "sqlite:relative.db"}),
        pytest.raises(ConfigError, match=r"capture='sqlite:relative\.db'"),
    ):
        Client().get("/orders/x/")
