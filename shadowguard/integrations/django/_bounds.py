"""Lock bounds on the shadow transaction of a Django connection.

When :class:`~._transactions.ShadowTransactions` opens the outermost transaction on a
connection, the bounds of :mod:`shadowguard._db_bounds` are set on it: on PostgreSQL
for that transaction only (its rollback ends them); on MariaDB and MySQL on the session,
put back by :func:`unbound` once the transaction is rolled back. Not inside a
transaction the primary opened (a test's ``atomic``): the bounds would cut the
primary's transaction off too.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from shadowguard import _db_bounds

__all__ = ["bound", "unbound"]


def bound(connection: BaseDatabaseWrapper) -> dict[str, str] | None:
    """Set the bounds; returns what :func:`unbound` puts back (MariaDB/MySQL), or None."""
    if (
        connection.vendor not in ("postgresql", "mysql")
        or len(connection.atomic_blocks) != 1
        or connection.connection is None
    ):
        return None
    # The driver's cursor: these statements are shadowguard's, not the shadow's.
    cursor = connection.connection.cursor()
    try:
        if connection.vendor == "postgresql":
            statement = _db_bounds.postgresql_statement()
            if statement is not None:
                cursor.execute(statement)
            return None
        if connection.vendor == "mysql":
            mariadb = bool(getattr(connection, "mysql_is_mariadb", False))
            before = _db_bounds.mysql_read(cursor, mariadb)
            if before is not None:
                _db_bounds.mysql_set(cursor, mariadb)
            return before
        return None  # pragma: no cover - only the vendors above get here
    finally:
        cursor.close()


def unbound(connection: BaseDatabaseWrapper, before: dict[str, Any] | None) -> None:
    """Put back the MariaDB/MySQL session variables :func:`bound` changed."""
    if not before or connection.connection is None:
        return  # closed: the server forgot the session with it
    cursor = connection.connection.cursor()
    try:
        _db_bounds.mysql_restore(cursor, before)
    finally:
        cursor.close()
