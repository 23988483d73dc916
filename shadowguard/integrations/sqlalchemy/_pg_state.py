"""PostgreSQL session state that outlives a rollback: read before shadow use, put back after.

Settings made with ``SET``/``set_config``, the role, advisory locks, ``LISTEN`` channels,
temporary tables, held cursors and SQL ``PREPARE``d statements stay on a connection after
its transaction is rolled back. :func:`snapshot` reads them (one round trip) before the
shadow first uses a connection; :func:`restore` undoes exactly what the shadow added, by
name, so the primary's own state (a ``connect`` hook's settings, its locks) stays.

Custom settings (``app.tenant``) are not listed anywhere PostgreSQL can be asked:
:func:`note_custom_settings` reads the ones a shadow statement names before it runs. A
name it cannot read (``RESET ALL``, a name built at run time) makes the state
unrestorable, and the connection is discarded. PostgreSQL never removes a custom setting
once a session has used it (even a rolled back ``SET LOCAL`` leaves it at ``''``), so
one the primary never had comes back as ``''``, not as NULL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from shadowguard.errors import ShadowGuardError

__all__ = ["Snapshot", "note_custom_settings", "restore", "snapshot"]

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


# A custom setting is a dotted name: SET app.tenant = ..., set_config('app.tenant', ...).
_SET_CUSTOM = re.compile(
    r"(?:^|;)\s*(?:SET|RESET)\s+(?:SESSION\s+|LOCAL\s+)?([A-Za-z_][\w$]*\.[\w$.]+)", re.I
)
_RESET_ALL = re.compile(r"(?:^|;)\s*RESET\s+ALL\b", re.I)
_SET_CONFIG = re.compile(r"\bset_config\s*\(\s*", re.I)
_LITERAL = re.compile(r"'((?:[^']|'')*)'")
_NAMED = re.compile(r"%\((\w+)\)s|:(\w+)|\$(\d+)")
_POSITIONAL = re.compile(r"%s|\?")


class Snapshot:
    """What :func:`restore` puts back: the listed state and the custom settings named."""

    __slots__ = ("custom", "state", "unknown")

    def __init__(self, state: tuple[Any, ...]) -> None:
        self.state = state
        #: Custom settings named by shadow statements, with their value before the first.
        self.custom: dict[str, str | None] = {}
        #: A shadow statement changed custom settings it does not name.
        self.unknown = False


def snapshot(dbapi_connection: Any) -> Snapshot:
    """The session state of a PostgreSQL connection, for :func:`restore`."""
    # A cursor of its own: the statement's may be a server-side (named) one.
    cursor = dbapi_connection.cursor()
    try:
        return Snapshot(_read(cursor))
    finally:
        cursor.close()


def note_custom_settings(
    dbapi_connection: Any, before: Snapshot, statement: str, parameters: Any
) -> None:
    """Before ``statement`` runs: read the custom settings it names that are not noted yet."""
    if "set" not in statement.lower():
        return
    if _RESET_ALL.search(statement):
        before.unknown = True
    names = [m.group(1) for m in _SET_CUSTOM.finditer(statement)]
    for m in _SET_CONFIG.finditer(statement):
        name = _argument(statement, m.end(), parameters)
        if name is None:
            before.unknown = True
        else:
            names.append(name)
    new = [n for n in dict.fromkeys(names) if "." in n and n not in before.custom]
    if new:
        cursor = dbapi_connection.cursor()
        try:
            before.custom.update(_custom_values(cursor, new))
        finally:
            cursor.close()


def _argument(statement: str, at: int, parameters: Any) -> str | None:
    """The value of the argument starting at ``at``: a literal or a bound parameter."""
    m = _LITERAL.match(statement, at)
    if m is not None:
        return m.group(1).replace("''", "'")
    m = _NAMED.match(statement, at)
    value: Any = None
    try:
        if m is not None and m.group(3) is not None and isinstance(parameters, Sequence):
            value = parameters[int(m.group(3)) - 1]
        elif m is not None and isinstance(parameters, Mapping):
            value = parameters[m.group(1) or m.group(2)]
        elif _POSITIONAL.match(statement, at) and isinstance(parameters, Sequence):
            value = parameters[len(_POSITIONAL.findall(statement, 0, at))]
    except (LookupError, ValueError):
        return None
    return value if isinstance(value, str) else None


def restore(dbapi_connection: Any, before: Snapshot, *, in_transaction: bool) -> None:
    """Put a PostgreSQL session back in the state ``before``, or raise.

    ``in_transaction``: the connection is in the primary's transaction, which must stay
    open: only what a rollback to the scope's savepoint left is undone (advisory locks,
    prepared statements), with no commit or rollback. Otherwise the connection ends idle.
    """
    cursor = dbapi_connection.cursor()
    try:
        after = _read(cursor)
        custom = _custom_values(cursor, before.custom)
        if after != before.state or custom != before.custom:
            _undo(cursor, before.state, after)
            for name, value in before.custom.items():
                if custom[name] != value:
                    cursor.execute(
                        f"SELECT set_config({_literal(name)}, {_literal(value or '')}, false)"
                    )
            if not in_transaction:
                # SET and set_config are transactional: keep them.
                dbapi_connection.commit()
            after = _read(cursor)
            custom = _custom_values(cursor, before.custom)
        if not in_transaction:
            dbapi_connection.rollback()
    finally:
        cursor.close()
    if after != before.state or custom != before.custom or before.unknown:
        # The pool invalidates a connection whose reset fails: it is closed, not reused.
        raise ShadowGuardError(
            "shadowguard could not restore the session state of a PostgreSQL connection "
            "used by shadow traffic; it is discarded"
        )


def _custom_values(cursor: Any, names: Sequence[str] | Mapping[str, Any]) -> dict[str, str | None]:
    """Custom settings by name; unset and ``''`` (what a reset leaves) both read as None."""
    values: dict[str, str | None] = {}
    for name in names:
        cursor.execute(f"SELECT current_setting({_literal(name)}, true)")
        values[name] = cursor.fetchone()[0] or None
    return values


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
    # Setting by setting: RESET ALL would also clear the primary's custom settings.
    for name in sorted(set(settings) | set(new_settings)):
        if name in ("role", "session_authorization") or new_settings.get(name) == settings.get(
            name
        ):
            continue
        if name in settings:
            cursor.execute(
                f"SELECT set_config({_literal(name)}, {_literal(settings[name])}, false)"
            )
        else:
            cursor.execute(f"RESET {_quote(name)}")
    for classid, objid, objsubid, mode in new_locks:
        if [classid, objid, objsubid, mode] in locks:
            continue
        unlock = "pg_advisory_unlock_shared" if mode == "ShareLock" else "pg_advisory_unlock"
        key = (
            f"({int(classid)}::bigint << 32) | {int(objid)}::bigint"
            if objsubid == 1
            else f"{int(classid)}::int, {int(objid)}::int"
        )
        # A session lock taken n times is held until unlocked n times; pg_locks shows one
        # row whatever n is. Unlock until the row is gone.
        still_held = (
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
            f" AND pid = pg_backend_pid() AND classid = {int(classid)}"
            f" AND objid = {int(objid)} AND objsubid = {int(objsubid)}"
            f" AND mode = {_literal(str(mode))}) FROM (SELECT {unlock}({key})) AS unlocked"
        )
        for _ in range(_MAX_HOLDS):
            cursor.execute(still_held)
            if not cursor.fetchone()[0]:
                break
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


_MAX_HOLDS = 1000  # unlocks tried per advisory lock; more holds leave it held (restore fails)
_DROP = {"v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE", "f": "FOREIGN TABLE"}


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
