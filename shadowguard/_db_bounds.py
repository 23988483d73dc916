"""Lock bounds of shadow database work: the statements that set them, per database.

A shadow transaction takes real row and index locks that the primary may wait on. Its
lock wait, its statements and its idle time are bounded (settings
``db_lock_timeout_ms``, ``db_statement_timeout_ms``, ``db_idle_timeout_ms``). On
PostgreSQL the bounds are transaction-local (``set_config(..., true)``, as ``SET
LOCAL``): the rollback that ends every shadow transaction ends them too, so nothing
reaches the primary's later use of a pooled connection. MariaDB and MySQL have only
session-level variables: a guard reads their values first (:func:`mysql_read`), sets
them (:func:`mysql_set`) and puts them back when the shadow transaction ends.

Shared by the database guards (SQLAlchemy, Django), which run these statements on the
driver's own cursor.
"""

from __future__ import annotations

import math
from typing import Any

from shadowguard.contract import settings_or_defaults

__all__ = ["mysql_read", "mysql_restore", "mysql_set", "postgresql_statement"]


def postgresql_statement() -> str | None:
    """One statement setting the bounds for the current transaction only, or None."""
    settings = settings_or_defaults()
    pairs = [
        ("lock_timeout", settings.db_lock_timeout_ms),
        ("statement_timeout", settings.db_statement_timeout_ms),
        ("idle_in_transaction_session_timeout", settings.db_idle_timeout_ms),
    ]
    calls = [f"set_config('{name}', '{int(ms)}ms', true)" for name, ms in pairs if ms is not None]
    return f"SELECT {', '.join(calls)}" if calls else None


def _mysql_values(mariadb: bool) -> dict[str, str]:
    """The session variables to set and their values (whole seconds where the server says)."""
    settings = settings_or_defaults()
    values: dict[str, str] = {}
    if settings.db_lock_timeout_ms is not None:
        # Whole seconds only: 100 ms becomes 1 s (0 would mean "never wait" on MariaDB).
        values["innodb_lock_wait_timeout"] = str(math.ceil(settings.db_lock_timeout_ms / 1000))
    if settings.db_statement_timeout_ms is not None:
        if mariadb:
            values["max_statement_time"] = f"{settings.db_statement_timeout_ms / 1000:.3f}"
        else:  # MySQL: milliseconds, SELECT statements only
            values["max_execution_time"] = str(int(settings.db_statement_timeout_ms))
    if mariadb and settings.db_idle_timeout_ms is not None:
        # The server closes a connection idle this long inside a transaction.
        values["idle_transaction_timeout"] = str(math.ceil(settings.db_idle_timeout_ms / 1000))
    return values


def mysql_read(cursor: Any, mariadb: bool) -> dict[str, str] | None:
    """The current session values of the variables :func:`mysql_set` changes, or None."""
    names = list(_mysql_values(mariadb))
    if not names:
        return None
    cursor.execute("SELECT " + ", ".join(f"@@SESSION.{name}" for name in names))
    row = cursor.fetchone()
    return {name: _number(value) for name, value in zip(names, row, strict=True)}


def mysql_set(cursor: Any, mariadb: bool) -> None:
    """Set the bounds on the session (put back with :func:`mysql_restore`)."""
    values = _mysql_values(mariadb)
    if values:
        cursor.execute("SET SESSION " + ", ".join(f"{n} = {v}" for n, v in values.items()))


def mysql_restore(cursor: Any, before: dict[str, str]) -> None:
    """Put the session variables back as :func:`mysql_read` found them."""
    if before:
        cursor.execute("SET SESSION " + ", ".join(f"{n} = {v}" for n, v in before.items()))


def _number(value: Any) -> str:
    # Values go back into SQL text: only numbers, never strings from the server.
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)
