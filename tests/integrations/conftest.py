"""Fixtures the integration tests share: one install fixture for every sink, and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import ModuleType

import pytest

from shadowguard import integrations
from tests.integrations._sa_backends import Backend, make_backend
from tests.integrations._support import installing


@pytest.fixture
def installed(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The sink named by the test module's ``SINK`` (or ``indirect`` param), installed for the test.

    Options come from the module's ``SINK_OPTIONS`` mapping, if it has one.
    """
    name = getattr(request, "param", None) or request.module.SINK
    options = getattr(request.module, "SINK_OPTIONS", {})
    with installing(integrations.load(name), **options) as sink:
        yield sink


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """PostgreSQL with a fresh table, asked through its own psycopg oracle."""
    yield from make_backend(request, "postgresql")


@pytest.fixture
def role(pg: Backend) -> Iterator[str]:
    """A fresh PostgreSQL role, dropped after the test."""
    name = f"sg_role_{uuid.uuid4().hex[:8]}"
    pg.execute(f"CREATE ROLE {name}")
    try:
        yield name
    finally:
        pg.execute(f"DROP ROLE IF EXISTS {name}")
