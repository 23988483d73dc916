"""A connection's part in a shadow scope: noted at its first statement, undone at the scope's end.

The first statement a scope runs on a connection notes it in the pool record (and, on
PostgreSQL, snapshots its session state) and registers the scope's end. If the primary
already has a transaction open on the connection, the scope sets a savepoint first and
its end rolls back to that savepoint only: the primary's pending writes stay. Otherwise
the scope's end rolls back whatever transaction the shadow left open. Either way a
connection still checked out then (kept across the scope) gets its session state back:
a shadow ``SET``, ``SET ROLE`` or advisory lock does not reach later primary statements.
A transaction shadow code began gets the lock bounds of :mod:`._bounds` at its first
statement. The write statements are kept for the ``db.commit`` record (:func:`commit_detail`).
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.util import concurrency

from shadowguard._statements import READ, TXN, UNKNOWN, WRITE
from shadowguard.contract import Kind, refuse, scope_now
from shadowguard.integrations.sqlalchemy import _pg_state as pg_state
from shadowguard.integrations.sqlalchemy._bounds import bound_transaction, rebound_after
from shadowguard.integrations.sqlalchemy._pool import (
    MYSQL_BOUNDS,
    PENDING_WRITES,
    PG_SNAPSHOT,
    PRIMARY_SAVEPOINT,
    SESSION_CHANGED,
    SHADOW_SCOPE,
    TARGET,
    USED_IN_SHADOW,
    clear_notes,
    restore_mysql_bounds,
)
from shadowguard.integrations.sqlalchemy._scope_end import CONNECTIONS, at_scope_end
from shadowguard.integrations.sqlalchemy._transaction import began_in_shadow

__all__ = [
    "close_socket_now",
    "commit_detail",
    "drop_without_io",
    "in_greenlet",
    "is_autocommit",
    "note_statement",
    "pinned_connections",
    "roll_back_to_savepoint",
    "short",
    "tables",
    "target",
]

_MAX_STATEMENTS = 20
# Reads that change the session: its settings, or a lock that outlives the transaction.
_SESSION_FUNCTIONS = re.compile(r"\b(?:set_config|pg_(?:try_)?advisory_lock\w*)\s*\(", re.I)
_SAVEPOINT_NAME = "shadowguard_scope"

#: Connections a Session holds open for its shadow transactions (:mod:`._session`): they
#: end with the Session's state, not with the scope.
pinned_connections: weakref.WeakSet[Connection] = weakref.WeakSet()


def target(conn: Connection) -> str:
    """The engine URL of ``conn`` without its password, for records and messages."""
    return conn.engine.url.render_as_string(hide_password=True)


def is_autocommit(conn: Connection) -> bool:
    """Does every statement on ``conn`` persist at once (SQLAlchemy's or the driver's setting)?"""
    return conn._is_autocommit_isolation() or _driver_autocommit(conn)


def _driver_autocommit(conn: Connection) -> bool:
    dbapi = conn.connection.dbapi_connection
    if dbapi is None:
        return False
    try:
        return bool(conn.dialect.detect_autocommit_setting(dbapi))
    except (AttributeError, NotImplementedError):
        return getattr(dbapi, "autocommit", False) is True


def note_statement(
    conn: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    kind: str,
    verb: str,
    autocommit: bool,
) -> None:
    """Note an allowed shadow statement on ``conn``: its first use, the scope, its writes."""
    try:
        info = conn.connection.info
    except NotImplementedError:
        # the dialect's first-connect initialization: no pool record yet, nothing to track
        return
    scope = scope_now()
    root = scope.root if scope is not None else None
    joins_scope = root is not None and info.get(SHADOW_SCOPE) is not root
    # Before the snapshot below, which would start a transaction of its own.
    in_primary_transaction = joins_scope and (
        not began_in_shadow(conn) or (not autocommit and _server_transaction(conn))
    )
    if in_primary_transaction and conn.dialect.is_async:
        raise _refuse_async_in_primary_transaction(conn)
    if root is not None and joins_scope:
        at_scope_end(root, CONNECTIONS, functools.partial(end_of_scope, weakref.ref(conn)))
    if not info.get(USED_IN_SHADOW):
        if conn.dialect.name == "postgresql":
            info[PG_SNAPSHOT] = pg_state.snapshot(conn.connection.dbapi_connection)
        info[USED_IN_SHADOW] = True
        info[TARGET] = target(conn)
    if root is not None and joins_scope:
        if in_primary_transaction and not autocommit:
            _open_savepoint(conn, info)
        info[SHADOW_SCOPE] = root
    if (
        not autocommit
        # Not before ROLLBACK TO / RELEASE: they may run in a transaction an error aborted.
        and verb not in ("ROLLBACK", "RELEASE")
        and not info.get(PRIMARY_SAVEPOINT)
        and began_in_shadow(conn)
    ):
        bound_transaction(conn, info)
        if kind != READ or "set_config" in statement.lower():
            rebound_after(conn, statement)
    snapshot = info.get(PG_SNAPSHOT)
    if snapshot is not None:
        pg_state.note_custom_settings(
            conn.connection.dbapi_connection, snapshot, statement, parameters
        )
    if kind not in (READ, TXN) or _SESSION_FUNCTIONS.search(statement):
        info[SESSION_CHANGED] = True
    if kind in (WRITE, UNKNOWN) or verb == "SAVEPOINT":
        if conn.dialect.name == "sqlite" and not autocommit:
            dbapi = conn.connection.dbapi_connection
            # pysqlite begins lazily, only before DML: a SAVEPOINT outside a transaction
            # starts one that its RELEASE would commit.
            if dbapi is not None and getattr(dbapi, "in_transaction", True) is False:
                cursor.execute("BEGIN")
        if kind != TXN:
            writes = info.setdefault(PENDING_WRITES, [])
            if len(writes) < _MAX_STATEMENTS:
                writes.append(short(statement))


def short(statement: str) -> str:
    """``statement`` on one line, at most 200 characters, for a record."""
    return " ".join(statement.split())[:200]


def _server_transaction(conn: Connection) -> bool:
    """Whether the database connection is already in a transaction (unknown driver: yes)."""
    driver = conn.connection.driver_connection
    status = getattr(getattr(driver, "info", None), "transaction_status", None)  # psycopg 3
    if status is not None:
        return int(status) != 0
    for name in ("get_transaction_status", "is_in_transaction"):  # psycopg2, asyncpg
        method = getattr(driver, name, None)
        if callable(method):
            return bool(method())
    flag = getattr(driver, "in_transaction", None)  # sqlite3, aiosqlite
    if isinstance(flag, bool):
        return flag
    server_status = getattr(driver, "server_status", None)  # PyMySQL, mysqlclient
    if isinstance(server_status, int):
        return bool(server_status & 1)  # SERVER_STATUS_IN_TRANS
    return True


def _refuse_async_in_primary_transaction(conn: Connection) -> Exception:
    # The scope ends outside SQLAlchemy's greenlet, where no IO is possible: it could
    # neither roll back to a savepoint nor restore the session state.
    return refuse(
        Kind.DB_COMMIT,
        target(conn),
        "execute",
        f"shadow work on an asyncio connection to {target(conn)} that is inside a "
        "transaction of the primary (its end could not roll back the shadow's part only)",
        remedy="Use a connection of its own for the shadow work, or commit or roll "
        "back the primary's transaction before the shadow scope starts",
    )


def _open_savepoint(conn: Connection, info: dict[str, Any]) -> None:
    """The primary has a transaction open on ``conn``: the scope rolls back to here only."""
    dbapi = conn.connection.dbapi_connection
    cursor = dbapi.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "sqlite" and getattr(dbapi, "in_transaction", True) is False:
            # pysqlite has not begun yet: a savepoint outside a transaction would be one
            # whose release commits.
            cursor.execute("BEGIN")
        cursor.execute(f"SAVEPOINT {_SAVEPOINT_NAME}")
    finally:
        cursor.close()
    info[PRIMARY_SAVEPOINT] = True


def roll_back_to_savepoint(dbapi_connection: Any, release: bool) -> None:
    """Undo the shadow's part of a primary transaction (and, with ``release``, end it)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT_NAME}")
        if release:
            cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT_NAME}")
    finally:
        cursor.close()


def end_of_scope(ref: weakref.ref[Connection]) -> None:
    """Undo what the scope left on a connection still checked out when it ends."""
    conn = ref()
    if conn is None or conn in pinned_connections or conn.closed or conn.invalidated:
        return
    info = conn.connection.info
    if info.get(SHADOW_SCOPE) is None:
        return  # returned to the pool and cleaned there, or already cleaned
    if conn.dialect.is_async and not in_greenlet():
        _end_without_io(conn, info)
        return
    in_primary_transaction = bool(info.pop(PRIMARY_SAVEPOINT, False))
    try:
        if in_primary_transaction:
            # The primary's transaction: undo the shadow's part only and leave it open.
            roll_back_to_savepoint(conn.connection, release=True)
        elif began_in_shadow(conn):
            conn.rollback()
        snapshot = info.get(PG_SNAPSHOT)
        if snapshot is not None:
            pg_state.restore(
                conn.connection.dbapi_connection, snapshot, in_transaction=in_primary_transaction
            )
        bounds = info.pop(MYSQL_BOUNDS, None)
        if bounds:
            restore_mysql_bounds(conn.connection.dbapi_connection, bounds)
    except Exception:
        # Fail closed: a connection that cannot be cleaned is not used again. Inside the
        # primary's transaction that ends it, loudly (its next statement raises).
        conn.invalidate()
        raise
    clear_notes(info)


def _end_without_io(conn: Connection, info: dict[str, Any]) -> None:
    """An asyncio scope ends outside SQLAlchemy's greenlet, where no IO is possible."""
    # The primary's transaction was refused at the scope's first statement on ``conn``.
    shadow_transaction = began_in_shadow(conn)
    if info.get(SESSION_CHANGED) or (shadow_transaction and not is_autocommit(conn)):
        # Drop the connection: the server rolls back and forgets its session state.
        drop_without_io(conn)
        if shadow_transaction:
            conn.rollback()  # SQLAlchemy's bookkeeping only: invalidated, it does no IO
    clear_notes(info)


def drop_without_io(conn: Connection) -> None:
    """Invalidate an asyncio connection where no IO is possible, closing its socket now."""
    close_socket_now(conn.connection.driver_connection)
    conn.invalidate()


def close_socket_now(driver_connection: Any) -> None:
    """Close a driver's connection without awaiting, where the driver allows it.

    SQLAlchemy cannot close a psycopg asyncio connection outside its greenlet: without
    this its server session (and the shadow's locks) would live on until garbage
    collection. asyncpg's ``terminate()`` is synchronous too.
    """
    pgconn = getattr(driver_connection, "pgconn", None)  # psycopg: libpq's PQfinish
    terminate = getattr(driver_connection, "terminate", None)  # asyncpg
    try:
        if pgconn is not None:
            pgconn.finish()
        elif callable(terminate):
            terminate()
    except Exception:  # noqa: S110
        pass  # the invalidation that follows discards it all the same


def in_greenlet() -> bool:
    """Can an asyncio connection do IO here (inside SQLAlchemy's greenlet)?"""
    check: Callable[[], bool] | None = getattr(concurrency, "in_greenlet", None)
    return bool(check and check())


def commit_detail(info: dict[str, Any], suppressed_by: str) -> dict[str, Any]:
    """The ``db.commit`` detail of the writes pending on a connection; forgets them."""
    statements = tuple(info.pop(PENDING_WRITES, ()))
    return {"statements": statements, "tables": tables(statements), "suppressed_by": suppressed_by}


def tables(statements: Iterable[str]) -> tuple[str, ...]:
    """The tables ``statements`` write to, as far as a quick look can tell."""
    found = set()
    for s in statements:
        m = re.search(r"\b(?:INTO|UPDATE|FROM)\s+([\w.\"]+)", s, re.I)
        if m:
            found.add(m.group(1).strip('"'))
    return tuple(sorted(found))
