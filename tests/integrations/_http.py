"""Checks the HTTP client tests share: the same promise asked of each client."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

import shadowguard
from shadowguard import Scope, configure, is_stub
from shadowguard._config import reset
from shadowguard._outbound import STUB_HEADER, Allow
from tests.peers.http import HttpServer

if TYPE_CHECKING:
    import requests

MARKER = "x-shadow-request"
#: The shadow reads every HTTP client test lets out (``SINK_OPTIONS`` of the installed fixture).
ALLOW_READS = [Allow(url="http://127.0.0.1:*/read*")]


@contextlib.contextmanager
def suppress_instrumentation() -> Iterator[None]:
    """OpenTelemetry's suppress-instrumentation key, as its exporters (or any code) set it."""
    from opentelemetry import context as otel_context
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

    token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def exporting_in_shadow(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, variable: str = "OTEL_EXPORTER_OTLP_ENDPOINT"
) -> Iterator[Scope]:
    """A shadow scope under OpenTelemetry's suppress key, the OTLP ``endpoint`` named by
    the environment ``variable``."""
    monkeypatch.setenv(variable, endpoint)
    with shadowguard.shadow() as scope, suppress_instrumentation():
        yield scope


def check_threads_keep_shadow_only_with_propagate(
    post: Callable[[str], Any], http_server: HttpServer
) -> None:
    """A propagated thread stays shadow (stubbed); a plain thread starts as primary (sent)."""
    results: list[Any] = []

    def call() -> None:
        results.append(post(f"{http_server.url}/pay"))

    with shadowguard.shadow():
        worker = threading.Thread(target=shadowguard.propagate(call))
        worker.start()
        worker.join()
        assert http_server.count() == 0
        assert results[0].headers[STUB_HEADER] == "1"
        plain = threading.Thread(target=call)
        plain.start()
        plain.join()
    assert http_server.count() == 1
    assert STUB_HEADER not in results[1].headers


def check_shadow_mode_without_a_scope_is_guarded(
    post: Callable[[str], Any], http_server: HttpServer
) -> None:
    """SHADOW mode with no scope at all still stubs the request."""
    try:
        configure(mode="shadow")
        assert shadowguard.current_scope() is None
        response = post(f"{http_server.url}/pay")
    finally:
        reset()
    assert http_server.count() == 0
    assert response.headers[STUB_HEADER] == "1"


def check_stubbed_in_shadow(
    http_server: HttpServer, scope: Scope, response: Any, body: bytes, client: str
) -> None:
    """A shadow POST to ``/pay?key=...``: no hit, an empty stub, one suppression by ``client``."""
    assert http_server.count() == 0
    assert response.headers[STUB_HEADER] == "1"
    assert is_stub(response)
    assert body == b"{}"
    assert scope.counts["http.request"] == 1
    assert scope.suppressed[0].target.endswith("/pay?key=***")
    assert scope.suppressed[0].detail["client"] == client


def check_sent_as_primary(http_server: HttpServer, response: Any, body: bytes) -> None:
    """The same request as primary: one hit, the server's own reply, no shadow marker."""
    assert json.loads(body)["real"] is True
    assert not is_stub(response)
    assert http_server.count() == 1
    assert MARKER not in http_server.hits[0].headers


def requests_response(request: Any, raw: Any) -> requests.Response:
    """The ``requests.Response`` an adapter returns for urllib's reply ``raw`` to ``request``."""
    import requests

    response = requests.Response()
    response.status_code = raw.status
    response._content = raw.read()
    response.request = request
    return response
