"""Checks the httpx and requests tests share: the same promise asked of each client."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import shadowguard
from shadowguard import configure
from shadowguard._config import reset
from shadowguard._outbound import STUB_HEADER
from tests.peers.http import HttpServer


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
