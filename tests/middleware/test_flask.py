from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, stream_with_context

from shadowguard import ConfigError, current_scope, is_shadow, propagate
from shadowguard._context import Scope
from shadowguard.middleware.flask import ShadowGuard
from shadowguard.middleware.wsgi import ShadowGuardMiddleware
from tests.middleware._helpers import closing_body, durations, new_durations, save_into
from tests.middleware.conftest import PgTable

SHADOW_HOST = {"Host": "orders-shadow:8080"}


def build_app(table: PgTable | None = None, **options: Any) -> tuple[Flask, list[Any]]:
    seen: list[Any] = []
    save = save_into(table)

    app = Flask(__name__)

    @app.post("/orders/<ref>")
    def order(ref: str) -> Any:
        seen.append(("view", is_shadow(), current_scope()))
        save(ref)
        response = Response("ok")

        def on_close() -> None:
            seen.append(("on_close", is_shadow(), current_scope()))
            save(f"{ref}-closed")

        response.call_on_close(on_close)
        return response

    @app.get("/stream")
    def stream() -> Any:
        def body() -> Iterator[str]:
            for i in range(3):
                seen.append(("chunk", is_shadow(), current_scope()))
                save(f"chunk-{i}")
                yield "x"

        return Response(stream_with_context(body()))

    @app.get("/stream-cleanup")
    def stream_cleanup() -> Any:
        def cleanup() -> None:
            seen.append(("cleanup", is_shadow(), current_scope()))
            save("cleanup")

        return Response(closing_body(cleanup, "first", "second"))

    @app.post("/thread/<ref>")
    def thread(ref: str) -> Any:
        worker = threading.Thread(target=propagate(save), args=(ref,))
        worker.start()
        worker.join()
        return "ok"

    ShadowGuard(app, **options)
    return app, seen


@pytest.mark.postgres
def test_shadow_request_writes_nothing_primary_writes(pg_table: PgTable) -> None:
    """The view's write and the call_on_close write are suppressed in shadow, done in primary."""
    app, seen = build_app(pg_table)
    client = app.test_client()
    assert client.post("/orders/a1", headers=SHADOW_HOST, buffered=True).status_code == 200
    assert pg_table.refs() == []
    assert [(w, s) for w, s, _ in seen] == [("view", True), ("on_close", True)]
    scope = seen[0][2]
    assert isinstance(scope, Scope)
    assert seen[1][2] is scope
    assert scope.counts == {"call": 2}

    seen.clear()
    assert client.post("/orders/a2", buffered=True).status_code == 200
    assert pg_table.refs() == ["a2", "a2-closed"]
    assert seen == [("view", False, None), ("on_close", False, None)]
    assert current_scope() is None


@pytest.mark.postgres
def test_streaming_generator_runs_after_the_view_and_stays_shadow(pg_table: PgTable) -> None:
    app, seen = build_app(pg_table)
    client = app.test_client()
    response = client.get("/stream", headers={"X-Shadow-Request": "1"}, buffered=False)
    # The view has returned and the body is not closed yet: the caller is not shadow.
    assert current_scope() is None
    assert response.get_data() == b"xxx"
    response.close()
    assert [s for _, s, _ in seen] == [True, True, True]
    assert pg_table.refs() == []
    assert current_scope() is None

    seen.clear()
    assert client.get("/stream", buffered=True).get_data() == b"xxx"
    assert pg_table.refs() == ["chunk-0", "chunk-1", "chunk-2"]


@pytest.mark.postgres
def test_thread_with_propagate_stays_shadow(pg_table: PgTable) -> None:
    app, _ = build_app(pg_table)
    client = app.test_client()
    client.post("/thread/t1", headers=SHADOW_HOST, buffered=True)
    assert pg_table.refs() == []
    client.post("/thread/t2", buffered=True)
    assert pg_table.refs() == ["t2"]


def test_server_thread_is_never_left_shadow_between_chunks() -> None:
    """While the server holds a half-iterated shadow body, its own frames are primary."""
    app, seen = build_app(None)
    body = app.wsgi_app(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/stream",
            "SERVER_NAME": "orders",
            "SERVER_PORT": "80",
            "HTTP_HOST": "orders-shadow",
            "wsgi.url_scheme": "http",
            "wsgi.input": None,
            "wsgi.errors": None,
        },
        lambda status, headers, exc_info=None: lambda data: None,
    )
    iterator = iter(body)
    assert next(iterator) == b"x"
    assert not is_shadow()
    assert next(iterator) == b"x"
    assert not is_shadow()
    body.close()  # type: ignore[attr-defined]
    assert [s for _, s, _ in seen] == [True, True]


@pytest.mark.postgres
def test_generator_cleanup_of_a_body_read_in_part_stays_shadow(pg_table: PgTable) -> None:
    app, seen = build_app(pg_table)
    for host in ("orders-shadow", "orders"):
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/stream-cleanup",
            "SERVER_NAME": "orders",
            "SERVER_PORT": "80",
            "HTTP_HOST": host,
            "wsgi.url_scheme": "http",
        }
        body = app.wsgi_app(environ, lambda status, headers, exc_info=None: lambda data: None)
        assert next(iter(body)) == b"first"
        body.close()  # type: ignore[attr-defined]  # the client went away
    assert [(w, s) for w, s, _ in seen] == [("cleanup", True), ("cleanup", False)]
    assert pg_table.refs() == ["cleanup"]


def test_histogram_route_and_debug_summary(
    metric_reader: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = build_app(None)
    client = app.test_client()
    caplog.set_level(logging.DEBUG, logger="shadowguard.middleware")
    before = durations(metric_reader)
    client.post("/orders/r1", headers=SHADOW_HOST, buffered=True)
    client.get("/missing", buffered=True)
    added = new_durations(before, durations(metric_reader))
    assert added == {
        (("http.response.status_code", 200), ("http.route", "/orders/<ref>"), ("shadow", True)): 1,
        (("http.response.status_code", 404), ("shadow", False)): 1,
    }
    lines = [r.getMessage() for r in caplog.records if r.name == "shadowguard.middleware"]
    assert lines == ["shadowguard: shadow request POST /orders/r1 -> 200 suppressed 2 call"]


def test_view_exception_ends_the_scope() -> None:
    app = Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = True

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("boom")

    ShadowGuard(app)
    with pytest.raises(RuntimeError):
        app.test_client().get("/boom", headers=SHADOW_HOST)
    assert current_scope() is None


def test_options_from_app_config_and_bad_options() -> None:
    app = Flask(__name__)
    app.config["SHADOWGUARD"] = {"marker_header": "x-mirror"}
    seen: list[bool] = []

    @app.get("/")
    def index() -> str:
        seen.append(is_shadow())
        return "ok"

    guard = ShadowGuard()
    guard.init_app(app)
    guard.init_app(app)  # idempotent: wrapped once
    client = app.test_client()
    client.get("/", headers={"X-Mirror": "1"}, buffered=True)
    client.get("/", headers={"X-Shadow-Request": "1"}, buffered=True)
    assert seen == [True, False]
    with pytest.raises(ConfigError, match="mode"):
        ShadowGuard(Flask(__name__), mode="sometimes")
    with pytest.raises(ConfigError):
        ShadowGuardMiddleware(app.wsgi_app, max_suppressions=-1)


def test_primary_file_wrapper_body_is_handed_over_untouched(tmp_path: Any) -> None:
    class FileWrapper:
        def __init__(self, file: Any) -> None:
            self.file = file

        def __iter__(self) -> Any:
            return iter(lambda: self.file.read(4), b"")

        def close(self) -> None:
            self.file.close()

    path = tmp_path / "f.txt"
    path.write_bytes(b"content")

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](path.open("rb"))

    environ = {"REQUEST_METHOD": "GET", "HTTP_HOST": "files", "wsgi.file_wrapper": FileWrapper}

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None, /) -> Any:
        return None

    body = ShadowGuardMiddleware(app)(environ, start)
    assert type(body) is FileWrapper
    body.close()
    shadow_body = ShadowGuardMiddleware(app)({**environ, "HTTP_HOST": "files-shadow"}, start)
    assert type(shadow_body) is not FileWrapper  # wrapped: the scope lasts until close()
    assert b"".join(shadow_body) == b"content"
    shadow_body.close()  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_under_a_real_wsgi_server_one_thread(pg_table: PgTable) -> None:
    """One server thread serves shadow then primary: the shadow state never lingers in it."""
    import urllib.request

    from werkzeug.serving import make_server

    app, seen = build_app(pg_table)
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def fetch(path: str, host: str) -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}")
        request.add_header("Host", host)
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())

    try:
        assert fetch("/stream", "orders-shadow") == b"xxx"
        assert pg_table.refs() == []
        assert fetch("/stream", "orders") == b"xxx"
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert [s for _, s, _ in seen] == [True] * 3 + [False] * 3
    assert pg_table.refs() == ["chunk-0", "chunk-1", "chunk-2"]
