"""WSGI capture: Flask under werkzeug's real server, and bare WSGI bodies in process."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shadowguard.capture import REDACTED
from shadowguard.middleware.wsgi import ROUTE_KEY, ShadowGuardMiddleware
from tests.capture._apps import build_flask
from tests.capture._support import records, records_when


def fetch(url: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_flask_under_werkzeug(wsgi_server: Callable[[Any], str], sqlite_url: str) -> None:
    base = wsgi_server(build_flask(capture=sqlite_url))
    assert fetch(f"{base}/orders/3", **{"x-request-id": "f-1"})[0] == 200
    assert fetch(f"{base}/orders/3", **{"x-request-id": "f-1", "x-shadow-request": "1"})[0] == 200
    assert fetch(f"{base}/stream", **{"x-request-id": "f-2"}) == (200, b'{"parts": [1, 2]}')
    assert fetch(f"{base}/boom", **{"x-request-id": "f-3"})[0] == 500
    found = {(r["request_id"], r["label"]): r for r in records_when(sqlite_url, 4)}
    assert set(found) == {
        ("f-1", "primary"),
        ("f-1", "shadow"),
        ("f-2", "primary"),
        ("f-3", "primary"),
    }
    primary, shadow = found["f-1", "primary"], found["f-1", "shadow"]
    assert primary["route"] == shadow["route"] == "/orders/<int:order_id>"
    assert primary["body"]["customer"]["accessToken"] == REDACTED
    assert primary["body"] == shadow["body"]
    assert (primary["suppressions"], shadow["suppressions"]) == ({}, {"call": 1})
    assert found["f-2", "primary"]["body"] == {"parts": [1, 2]}
    boom = found["f-3", "primary"]
    # Flask answered 500 itself; the record still names what the view raised.
    assert (boom["status"], boom["exception"], boom["route"]) == (500, "KeyError", "/boom")


def test_flask_reads_capture_from_its_config(jsonl_url: str) -> None:
    from flask import Flask

    from shadowguard.middleware.flask import ShadowGuard

    app = Flask(__name__)
    app.add_url_rule("/ping/<name>", "ping", lambda name: {"pong": name})
    app.config["SHADOWGUARD"] = {"capture": jsonl_url, "marker_header": "x-mirror"}
    ShadowGuard(app)
    client = app.test_client()
    assert client.get("/ping/a", headers={"x-mirror": "1"}).json == {"pong": "a"}
    (record,) = records_when(jsonl_url, 1)
    assert (record["label"], record["route"], record["body"]) == (
        "shadow",
        "/ping/<name>",
        {"pong": "a"},
    )


def _environ(path: str, **extra: Any) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/api",
        "PATH_INFO": path,
        "SERVER_NAME": "orders",
        "SERVER_PORT": "80",
        "HTTP_HOST": "orders",
        "wsgi.url_scheme": "http",
        **extra,
    }


def _call(app: Any, environ: dict[str, Any]) -> bytes:
    seen: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        seen.append(status)

    body = app(environ, start_response)
    try:
        return b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def test_bare_wsgi_bodies(jsonl_url: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        environ[ROUTE_KEY] = "/orders/{id}"
        start_response("201 Created", [("Content-Type", "application/json"), ("ETag", "v1")])
        if environ["PATH_INFO"].endswith("list"):
            return [b'{"a": ', b'"secret-free"}']

        def generate() -> Iterator[bytes]:
            yield b'{"secret": '
            yield b'"s3cr3t"}'

        return generate()

    guarded = ShadowGuardMiddleware(app, capture=jsonl_url)
    # PEP 3333: the path arrives as latin-1 decoded bytes; the record has the real text.
    path = "/orders/\u00e9t\u00e9".encode().decode("latin-1")
    assert (
        _call(guarded, _environ(path + "/list", HTTP_X_REQUEST_ID="w-1")) == b'{"a": "secret-free"}'
    )
    assert _call(guarded, _environ("/gen", HTTP_X_REQUEST_ID="w-2")) == b'{"secret": "s3cr3t"}'
    first, second = records(jsonl_url)
    assert first["path"] == "/api/orders/\u00e9t\u00e9/list"
    assert (first["method"], first["status"], first["route"]) == ("POST", 201, "/orders/{id}")
    assert first["body"] == {"a": "secret-free"}
    assert second["body"] == {"secret": REDACTED}
    assert second["headers"] == {"content-type": "application/json"}


def test_bare_wsgi_exception(jsonl_url: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        raise ZeroDivisionError

    guarded = ShadowGuardMiddleware(app, capture=jsonl_url)
    with pytest.raises(ZeroDivisionError):
        _call(guarded, _environ("/x"))
    with pytest.raises(ZeroDivisionError):
        _call(guarded, _environ("/x", HTTP_X_SHADOW_REQUEST="1"))
    found = records(jsonl_url)
    assert [(r["label"], r["status"], r["exception"]) for r in found] == [
        ("primary", None, "ZeroDivisionError"),
        ("shadow", None, "ZeroDivisionError"),
    ]
