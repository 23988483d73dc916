"""The pool's reset of a returned connection: nothing of the shadow stays on it.

A connection used in shadow carries notes in its pool record's ``info`` (the keys below,
written by :mod:`._connection`). When it goes back to the pool it is rolled back and, on
PostgreSQL, its session state is put back as it was before shadow traffic first used it
(on MariaDB/MySQL, the session variables of the shadow's lock bounds); a connection that
cannot be restored is discarded by the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shadowguard import _db_bounds
from shadowguard.integrations.sqlalchemy import _pg_state as pg_state

__all__ = [
    "MYSQL_BOUNDS",
    "PENDING_WRITES",
    "PG_SNAPSHOT",
    "PRIMARY_SAVEPOINT",
    "SESSION_CHANGED",
    "SHADOW_SCOPE",
    "TARGET",
    "USED_IN_SHADOW",
    "clear_notes",
    "make_fairy_reset",
    "restore_mysql_bounds",
]

# Keys in the pool record's ``info``, all cleared when the connection returns to the pool.
USED_IN_SHADOW = "shadowguard.used"
TARGET = "shadowguard.target"
#: The outermost scope that last used the connection.
SHADOW_SCOPE = "shadowguard.scope"
#: The write statements since the last commit, for the ``db.commit`` record.
PENDING_WRITES = "shadowguard.writes"
#: The PostgreSQL session state before shadow traffic first used the connection.
PG_SNAPSHOT = "shadowguard.snapshot"
#: The scope set a savepoint inside a transaction of the primary.
PRIMARY_SAVEPOINT = "shadowguard.savepoint"
#: A shadow statement may have changed the session state (not a plain read).
SESSION_CHANGED = "shadowguard.session_changed"
#: MariaDB/MySQL session variables before the shadow's lock bounds changed them.
MYSQL_BOUNDS = "shadowguard.mysql_bounds"
_NOTES = (
    USED_IN_SHADOW,
    TARGET,
    SHADOW_SCOPE,
    PENDING_WRITES,
    PG_SNAPSHOT,
    PRIMARY_SAVEPOINT,
    SESSION_CHANGED,
    MYSQL_BOUNDS,
)


def clear_notes(info: dict[str, Any]) -> None:
    """Forget what shadow traffic noted on a connection (it has been cleaned)."""
    for key in _NOTES:
        info.pop(key, None)


def make_fairy_reset(original: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``_ConnectionFairy._reset``: a connection used in shadow is cleaned first."""

    # A wrapper rather than the pool's "reset" event: an event listener makes SQLAlchemy
    # build and dispatch a reset state on every primary checkin (about 2 us).
    def _reset(
        self: Any,
        pool: Any,
        transaction_was_reset: bool = False,
        terminate_only: bool = False,
        asyncio_safe: bool = True,
    ) -> None:
        record = self._connection_record
        if record is not None and USED_IN_SHADOW in record.info:
            _on_return(self.dbapi_connection, record.info, terminate_only, asyncio_safe)
        original(self, pool, transaction_was_reset, terminate_only, asyncio_safe)

    return _reset


def _on_return(
    dbapi_connection: Any, info: dict[str, Any], terminate_only: bool, asyncio_safe: bool
) -> None:
    """A connection used in shadow goes back to the pool: leave nothing of the shadow on it."""
    snapshot = info.get(PG_SNAPSHOT)
    bounds = info.get(MYSQL_BOUNDS)
    clear_notes(info)
    if terminate_only or not asyncio_safe or dbapi_connection is None:
        return  # the pool closes or discards this connection without using it again
    # An exception here makes the pool invalidate the connection: still no trace.
    dbapi_connection.rollback()
    if bounds:
        # The MariaDB/MySQL lock bounds are session variables: put back the server's.
        restore_mysql_bounds(dbapi_connection, bounds)
    if snapshot is not None:
        pg_state.restore(dbapi_connection, snapshot, in_transaction=False)


def restore_mysql_bounds(dbapi_connection: Any, before: dict[str, str]) -> None:
    """Put back the MariaDB/MySQL session variables the shadow's lock bounds changed."""
    cursor = dbapi_connection.cursor()
    try:
        _db_bounds.mysql_restore(cursor, before)
    finally:
        cursor.close()
