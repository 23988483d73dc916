"""Helpers the integration tests share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any


@contextlib.contextmanager
def installing(sink: ModuleType, **options: Any) -> Iterator[ModuleType]:
    """``sink`` installed with ``options`` for the block, uninstalled after it."""
    sink.install(**options)
    try:
        yield sink
    finally:
        sink.uninstall()


def guarded_producer(how: str, config: dict[str, Any]) -> Any:
    """A confluent-kafka producer guarded by ``install()`` (the caller uninstalls) or ``guard()``."""
    import confluent_kafka

    from shadowguard.integrations import confluent_kafka as guard_module

    if how == "install":
        guard_module.install()
        return confluent_kafka.Producer(config)
    return guard_module.guard(confluent_kafka.Producer(config), config=config)


def shadow_refusal_seconds(engine: Any, statement: str, match: str) -> float:
    """Run ``statement`` in a shadow transaction that must fail with ``match``; its seconds."""
    import time

    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    import shadowguard

    started = time.monotonic()
    with shadowguard.shadow(), pytest.raises(DBAPIError, match=match), engine.begin() as c:
        c.execute(text(statement))
    return time.monotonic() - started


def refusal_seconds_behind(primary: Any, engine: Any, statement: str, match: str) -> float:
    """``shadow_refusal_seconds`` while the DB-API connection ``primary`` holds a lock; the
    primary commits after it, and is closed whatever happens."""
    try:
        waited = shadow_refusal_seconds(engine, statement, match)
        primary.commit()
    finally:
        primary.close()
    return waited
