"""Fixtures the SQLAlchemy guard tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integrations._sa_backends import Backend, make_backend


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """PostgreSQL with a fresh table, asked through its own psycopg oracle."""
    yield from make_backend(request, "postgresql")
