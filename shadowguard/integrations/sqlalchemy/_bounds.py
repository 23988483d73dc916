"""Lock bounds on the transactions shadow code begins: it cannot hold the primary up for long.

At the first shadow statement of a root transaction that shadow code began (not the
primary's transaction, not an autocommit connection), the bounds of
:mod:`shadowguard._db_bounds` are set on the connection: on PostgreSQL for that
transaction only (its rollback ends them); on MariaDB and MySQL on the session, with the
previous values noted in the pool record and put back when the scope ends or the
connection returns to the pool (:func:`._pool.restore_mysql_bounds`), whichever comes
first. A shadow ``SET`` of a bound on PostgreSQL is overridden again before the next
statement (:func:`rebound_after`); MariaDB and MySQL refuse shadow ``SET`` anyway.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.engine import Connection

from shadowguard import _db_bounds
from shadowguard._statements import MYSQL_DIALECTS
from shadowguard.integrations.sqlalchemy._pool import MYSQL_BOUNDS, SESSION_CHANGED

__all__ = ["bound_transaction", "rebound_after"]

#: The Connection attribute naming the root transaction the bounds were set for.
_BOUNDED = "_shadowguard_bounded_transaction"
# A shadow statement that may change a bound (SET, SET LOCAL, set_config, RESET ALL).
_BOUND_NAMES = re.compile(
    r"\b(?:lock_timeout|statement_timeout|idle_in_transaction_session_timeout)\b"
    r"|\breset\s+all\b",
    re.I,
)


def bound_transaction(conn: Connection, info: dict[str, Any]) -> None:
    """Set the lock bounds for the shadow transaction ``conn`` is in (once per transaction)."""
    transaction = conn._transaction
    if transaction is None or vars(conn).get(_BOUNDED) is transaction:
        return
    setattr(conn, _BOUNDED, transaction)
    name = conn.dialect.name
    if name == "postgresql":
        statement = _db_bounds.postgresql_statement()
        if statement is not None:
            _run(conn.connection.dbapi_connection, lambda cursor: cursor.execute(statement))
    elif name in MYSQL_DIALECTS and MYSQL_BOUNDS not in info:
        mariadb = bool(getattr(conn.dialect, "is_mariadb", False))

        def set_bounds(cursor: Any) -> None:
            before = _db_bounds.mysql_read(cursor, mariadb)
            if before is not None:
                # Noted before the SET: a SET that half-failed is still put back.
                info[MYSQL_BOUNDS] = before
                info[SESSION_CHANGED] = True
                _db_bounds.mysql_set(cursor, mariadb)

        _run(conn.connection.dbapi_connection, set_bounds)


def rebound_after(conn: Connection, statement: str) -> None:
    """Before a shadow statement that may loosen a PostgreSQL bound: set them again after it.

    The bounds are set again before the next statement of the transaction: shadow code
    cannot lift its own bounds for longer than the statement that changes them.
    """
    if conn.dialect.name == "postgresql" and _BOUND_NAMES.search(statement):
        vars(conn).pop(_BOUNDED, None)


def _run(dbapi_connection: Any, action: Any) -> None:
    # The driver's cursor: the statements are shadowguard's own, not the shadow's.
    cursor = dbapi_connection.cursor()
    try:
        action(cursor)
    finally:
        cursor.close()
