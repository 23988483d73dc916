"""ShadowTransactions: an atomic block on every alias, rolled back at the end.

The outermost one on a connection gets the lock bounds of :mod:`._bounds`. While it is
open, the execute wrapper knows the block's depth and savepoints (so shadow
code cannot end it with raw SQL), and the driver's own connection is held
(:mod:`._raw`), so it cannot end it below Django either.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from shadowguard.integrations.django._bounds import bound, unbound
from shadowguard.integrations.django._execute import (
    DEPTH_ATTR,
    SAVEPOINTS_ATTR,
    add_guard,
    remove_guard,
)
from shadowguard.integrations.django._raw import Hold, forget, hold, release
from shadowguard.integrations.django._registry import PATCHES

__all__ = ["ShadowTransactions"]

logger = logging.getLogger("shadowguard")


@dataclass
class _Opened:
    """One alias's shadow transaction, and what to put back when it ends."""

    alias: str
    atomic: transaction.Atomic
    added_guard: bool
    outer_depth: int | None
    outer_savepoints: frozenset[str] | None
    hold: Hold | None = None
    #: MariaDB/MySQL session variables before the lock bounds changed them.
    bounds: dict[str, str] | None = None


class ShadowTransactions:
    """Run Django database work in transactions that are rolled back, on every alias.

    ``begin()`` and ``end()`` must run in the thread that uses the connections (Django
    connections belong to a thread); it is also a context manager::

        with shadowguard.shadow(), ShadowTransactions():
            Order.objects.create(ref="A-1")  # validated by the database, then rolled back
    """

    def __init__(self, using: Iterable[str] | None = None) -> None:
        self.using = list(using) if using is not None else None
        self._opened: list[_Opened] = []
        self._thread: int | None = None

    def begin(self) -> None:
        """Open an atomic block on each alias (connecting to the database if needed)."""
        self._thread = threading.get_ident()
        try:
            for alias in self.using if self.using is not None else list(connections):
                connection = connections[alias]
                added = add_guard(connection)
                atomic = transaction.atomic(using=alias)
                # Lets durable=True blocks nest inside, as under Django's TestCase.
                atomic._from_testcase = True
                opened = _Opened(
                    alias,
                    atomic,
                    added,
                    getattr(connection, DEPTH_ATTR, None),
                    getattr(connection, SAVEPOINTS_ATTR, None),
                )
                atomic.__enter__()
                self._opened.append(opened)
                if opened.outer_depth is None:
                    opened.bounds = bound(connection)
                setattr(connection, DEPTH_ATTR, len(connection.atomic_blocks))
                savepoints = frozenset(sid for sid in connection.savepoint_ids if sid)
                setattr(connection, SAVEPOINTS_ATTR, savepoints)
                if opened.outer_depth is None:
                    opened.hold = hold(connection)
        except BaseException:
            self.end()
            raise

    def end(self) -> None:
        """Roll every transaction back (idempotent); on_commit callbacks are discarded."""
        if self._opened and self._thread != threading.get_ident():
            # Django connections belong to their thread: touching this thread's would be
            # wrong. Nothing commits: the open transaction dies with its connection.
            logger.error(
                "shadowguard: shadow transactions cannot be ended from another thread; "
                "they are rolled back when their connection closes"
            )
            return
        errors: list[BaseException] = []
        while self._opened:
            opened = self._opened.pop()
            connection = connections[opened.alias]
            try:
                _roll_back(connection, opened)
                unbound(connection, opened.bounds)
            except Exception as exc:
                errors.append(exc)
                # Whatever failed, the transaction must not outlive the request: closing
                # the connection makes the server roll it back.
                with contextlib.suppress(Exception):
                    connection.close()
            finally:
                _put_back(connection, opened)
        if errors:
            raise errors[0]

    def __enter__(self) -> ShadowTransactions:
        self.begin()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()


def _roll_back(connection: BaseDatabaseWrapper, opened: _Opened) -> None:
    try:
        if opened.hold is not None:
            release(opened.hold)
    finally:
        if opened.hold is not None:
            # Django's own rollback goes through the driver connection: never refused.
            forget(opened.hold)
        if connection.in_atomic_block:
            transaction.set_rollback(True, using=opened.alias)
        opened.atomic.__exit__(None, None, None)


def _put_back(connection: BaseDatabaseWrapper, opened: _Opened) -> None:
    if opened.outer_depth is not None:
        setattr(connection, DEPTH_ATTR, opened.outer_depth)
        setattr(connection, SAVEPOINTS_ATTR, opened.outer_savepoints)
    else:
        for attr in (DEPTH_ATTR, SAVEPOINTS_ATTR):
            if hasattr(connection, attr):
                delattr(connection, attr)
    if opened.added_guard and not PATCHES.installed:
        remove_guard(connection)
