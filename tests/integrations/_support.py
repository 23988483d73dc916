"""Helpers the integration tests share."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, NoReturn


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


def shadow_and_primary_threads(
    send: Callable[[bool, int, int], object], threads: int, calls: int
) -> list[BaseException]:
    """``threads`` threads at once, the even ones in a shadow scope: thread ``n`` calls
    ``send(shadow, n, i)`` for each ``i`` below ``calls``. The errors raised in them."""
    import shadowguard

    errors: list[BaseException] = []

    def work(shadow: bool, n: int) -> None:
        try:
            for i in range(calls):
                if shadow:
                    with shadowguard.shadow():
                        send(True, n, i)
                else:
                    send(False, n, i)
        except BaseException as exc:  # pragma: no cover - the caller asserts there are none
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n % 2 == 0, n)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors


def raising(message: str) -> Callable[..., NoReturn]:
    """A stand-in for a guard's internal that breaks with ``RuntimeError(message)``."""

    def broken(*args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError(message)

    return broken
