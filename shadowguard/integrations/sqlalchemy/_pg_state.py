"""PostgreSQL session state that outlives a rollback: read before shadow use, put back after.

Settings made with ``SET``/``set_config``, the role, advisory locks, ``LISTEN`` channels,
temporary tables, held cursors and SQL ``PREPARE``d statements stay on a connection after
its transaction is rolled back. :func:`snapshot` reads them (one round trip) before the
shadow first uses a connection; :func:`restore` undoes exactly what the shadow added, by
name, so the primary's own state (a ``connect`` hook's settings, its locks) stays.
"""

from __future__ import annotations

import json
from typing import Any

from shadowguard.errors import ShadowGuardError

__all__ = ["restore", "snapshot"]

_STATE = """SELECT
 (SELECT coalesce(json_object_agg(name, setting), '{}') FROM pg_settings
   WHERE source = 'session')::text,
 (SELECT coalesce(json_agg(json_build_array(classid, objid, objsubid, mode)
   ORDER BY classid, objid, objsubid, mode), '[]')
   FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::text,
 (SELECT coalesce(json_agg(c ORDER BY c), '[]') FROM pg_listening_channels() c)::text,
 (SELECT coalesce(json_agg(json_build_array(relkind, relname) ORDER BY relname), '[]')
   FROM pg_class WHERE relnamespace = pg_my_temp_schema()
   AND relkind IN ('r', 'p', 'v', 'm', 'S', 'f'))::text,
 (SELECT coalesce(json_agg(name ORDER BY name), '[]') FROM pg_cursors
   WHERE name <> '')::text,
 (SELECT coalesce(json_agg(name ORDER BY name), '[]') FROM pg_prepared_statements
   WHERE from_sql)::text,
 session_user::text, current_user::text"""


def snapshot(dbapi_connection: Any) -> tuple[Any, ...]:
    """The session state of a PostgreSQL connection, for :func:`restore`."""
    # A cursor of its own: the statement's may be a server-side (named) one.
    cursor = dbapi_connection.cursor()
    try:
        return _read(cursor)
    finally:
        cursor.close()


def restore(dbapi_connection: Any, before: tuple[Any, ...], *, in_transaction: bool) -> None:
    """Put a PostgreSQL session back in the state ``before``, or raise.

    ``in_transaction``: the connection is in the primary's transaction, which must stay
    open: only what a rollback to the scope's savepoint left is undone (advisory locks,
    prepared statements), with no commit or rollback. Otherwise the connection ends idle.
    """
    cursor = dbapi_connection.cursor()
    try:
        after = _read(cursor)
        if after != before:
            _undo(cursor, before, after)
            if not in_transaction:
                # SET and RESET are transactional: keep them.
                dbapi_connection.commit()
            after = _read(cursor)
        if not in_transaction:
            dbapi_connection.rollback()
    finally:
        cursor.close()
    if after != before:
        # The pool invalidates a connection whose reset fails: it is closed, not reused.
        raise ShadowGuardError(
            "shadowguard could not restore the session state of a PostgreSQL connection "
            "used by shadow traffic; it is discarded"
        )


def _read(cursor: Any) -> tuple[Any, ...]:
    cursor.execute(_STATE)
    row = cursor.fetchone()
    return (*(json.loads(value) for value in row[:6]), *row[6:])


def _undo(cursor: Any, before: tuple[Any, ...], after: tuple[Any, ...]) -> None:
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
    for channel in set(new_channels) - set(channels):
        cursor.execute(f"UNLISTEN {_quote(channel)}")
    for kind, name in new_temp:
        if [kind, name] not in temp:
            what = _DROP.get(kind, "TABLE")
            cursor.execute(f"DROP {what} IF EXISTS pg_temp.{_quote(name)} CASCADE")
    for name in set(new_cursors) - set(cursors):
        cursor.execute(f"CLOSE {_quote(name)}")
    for name in set(new_prepared) - set(prepared):
        cursor.execute(f"DEALLOCATE {_quote(name)}")


_DROP = {"v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE", "f": "FOREIGN TABLE"}


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
