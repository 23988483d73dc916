"""The pool's reset of a returned connection: nothing of the shadow stays on it.

A connection used in shadow carries notes in its pool record's ``info`` (the keys below,
written by :mod:`._connection`). When it goes back to the pool it is rolled back and, on
PostgreSQL, its session state is put back as it was before shadow traffic first used it;
a connection that cannot be restored is discarded by the pool.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from shadowguard.errors import ShadowGuardError

__all__ = [
    "PENDING_WRITES",
    "PG_SNAPSHOT",
    "PRIMARY_SAVEPOINT",
    "SHADOW_SCOPE",
    "TARGET",
    "USED_IN_SHADOW",
    "make_fairy_reset",
    "pg_snapshot",
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
_NOTES = (USED_IN_SHADOW, TARGET, SHADOW_SCOPE, PENDING_WRITES, PG_SNAPSHOT, PRIMARY_SAVEPOINT)

# The session state of a PostgreSQL connection that outlives a rollback, in one round trip.
# Taken before shadow traffic first uses a checked-out connection and compared when it
# returns to the pool: the primary's own state (SETs made by a connect hook, its advisory
# locks, temporary tables) must come back exactly, and the shadow's must be gone.
_PG_STATE = """SELECT
 (SELECT coalesce(json_object_agg(name, setting), '{}') FROM pg_settings
   WHERE source = 'session')::text,
 (SELECT coalesce(json_agg(json_build_array(classid, objid, objsubid, mode)
   ORDER BY classid, objid, objsubid, mode), '[]')
   FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::text,
 (SELECT coalesce(json_agg(c ORDER BY c), '[]') FROM pg_listening_channels() c)::text,
 (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()),
 (SELECT count(*) FROM pg_cursors),
 (SELECT count(*) FROM pg_prepared_statements WHERE from_sql),
 session_user::text, current_user::text"""


def pg_snapshot(dbapi_connection: Any) -> tuple[Any, ...]:
    """The session state of a PostgreSQL connection, for :func:`make_fairy_reset` to restore."""
    # A cursor of its own: the statement's may be a server-side (named) one.
    cursor = dbapi_connection.cursor()
    try:
        return _pg_state(cursor)
    finally:
        cursor.close()


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
        original(
            self,
            pool,
            transaction_was_reset=transaction_was_reset,
            terminate_only=terminate_only,
            asyncio_safe=asyncio_safe,
        )

    return _reset


def _on_return(
    dbapi_connection: Any, info: dict[str, Any], terminate_only: bool, asyncio_safe: bool
) -> None:
    """A connection used in shadow goes back to the pool: leave nothing of the shadow on it."""
    snapshot = info.get(PG_SNAPSHOT)
    for key in _NOTES:
        info.pop(key, None)
    if terminate_only or not asyncio_safe or dbapi_connection is None:
        return  # the pool closes or discards this connection without using it again
    # An exception here makes the pool invalidate the connection: still no trace.
    dbapi_connection.rollback()
    if snapshot is not None:
        _pg_restore(dbapi_connection, snapshot)


def _pg_restore(dbapi_connection: Any, before: tuple[Any, ...]) -> None:
    """Put a PostgreSQL session back in the state ``before``, or raise."""
    cursor = dbapi_connection.cursor()
    try:
        after = _pg_state(cursor)
        if after == before:
            dbapi_connection.rollback()
            return
        _pg_undo(cursor, before, after)
        dbapi_connection.commit()
        left = _pg_state(cursor)
        dbapi_connection.rollback()
    finally:
        cursor.close()
    if left != before:
        # The pool invalidates a connection whose reset fails: it is closed, not reused.
        raise ShadowGuardError(
            "shadowguard could not restore the session state of a PostgreSQL connection "
            "used by shadow traffic; the pool discards it"
        )


def _pg_state(cursor: Any) -> tuple[Any, ...]:
    cursor.execute(_PG_STATE)
    row = cursor.fetchone()
    return (json.loads(row[0]), json.loads(row[1]), json.loads(row[2]), *row[3:])


def _pg_undo(cursor: Any, before: tuple[Any, ...], after: tuple[Any, ...]) -> None:
    settings, locks, channels, temp, cursors, prepared, session_user, role = before
    new_settings, new_locks, new_channels, new_temp, new_cursors, new_prepared, *users = after
    if users != [session_user, role]:
        # SET ROLE and SET SESSION AUTHORIZATION are not in pg_settings, and RESET ALL
        # leaves them: the next primary checkout would run as another role.
        if users[0] != session_user:
            cursor.execute(f"SET SESSION AUTHORIZATION {_quote(session_user)}")
        if role != session_user:
            cursor.execute(f"SET ROLE {_quote(role)}")
        else:
            cursor.execute("RESET ROLE")
    if new_settings != settings:
        cursor.execute("RESET ALL")
        for name, value in settings.items():
            cursor.execute(f"SELECT set_config({_literal(name)}, {_literal(value)}, false)")
    for classid, objid, objsubid, mode in new_locks:
        if [classid, objid, objsubid, mode] in locks:
            continue
        unlock = "pg_advisory_unlock_shared" if mode == "ShareLock" else "pg_advisory_unlock"
        key = (
            f"({int(classid)}::bigint << 32) | {int(objid)}::bigint"
            if objsubid == 1
            else f"{int(classid)}::int, {int(objid)}::int"
        )
        cursor.execute(f"SELECT {unlock}({key})")
    for channel in new_channels:
        if channel not in channels:
            cursor.execute(f"UNLISTEN {_quote(channel)}")
    # Only when the primary had none of its own, or they would go too.
    if new_temp != temp and temp == 0:
        cursor.execute("DISCARD TEMP")
    if new_cursors != cursors and cursors == 0:
        cursor.execute("CLOSE ALL")
    if new_prepared != prepared and prepared == 0:
        cursor.execute("DEALLOCATE ALL")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
