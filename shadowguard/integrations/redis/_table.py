"""The command table of each connection pool, fetched once, on its first shadow command.

``COMMAND`` is sent on the connection the shadow command is about to use (it is not in a
transaction yet), raw, below redis-py's response callbacks, so the reply's shape does not
depend on the client's version or ``decode_responses``. A server that refuses ``COMMAND``
(an error reply: renamed, or not allowed to this user) gets the built-in table, kept for
the pool too; a connection error is raised, as the command itself would raise it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

from shadowguard.integrations.redis._commands import BUILTIN, CommandTable, from_reply

__all__ = ["forget", "table_for", "table_for_async"]

_tables: weakref.WeakKeyDictionary[Any, CommandTable] = weakref.WeakKeyDictionary()
_fetching = threading.Lock()
_async_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def _error_types() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ResponseError

    return (ResponseError,)


def _table(reply: Any) -> CommandTable:
    try:
        table = from_reply(reply)
    except (TypeError, ValueError, IndexError, AttributeError):
        table = None  # a reply of a shape this parser does not know: stay conservative
    return table if table is not None else BUILTIN


def table_for(pool: Any, connection: Any) -> CommandTable:
    """The table of ``pool``, fetched over ``connection`` the first time."""
    table = _tables.get(pool)
    if table is not None:
        return table
    with _fetching:
        table = _tables.get(pool)
        if table is None:
            try:
                connection.send_command("COMMAND")
                table = _table(connection.read_response())
            except _error_types():
                table = BUILTIN
            _tables[pool] = table
    return table


async def table_for_async(pool: Any, connection: Any) -> CommandTable:
    """:func:`table_for` for redis.asyncio: one fetch per pool, other tasks wait for it."""
    table = _tables.get(pool)
    if table is not None:
        return table
    lock = _async_locks.get(pool)
    if lock is None:
        lock = _async_locks[pool] = asyncio.Lock()
    async with lock:
        table = _tables.get(pool)
        if table is None:
            try:
                await connection.send_command("COMMAND")
                table = _table(await connection.read_response())
            except _error_types():
                table = BUILTIN
            _tables[pool] = table
    return table


def cached(pool: Any) -> CommandTable | None:
    """The table kept for ``pool``, if any."""
    return _tables.get(pool)


def forget() -> None:
    """Drop every kept table (uninstall)."""
    with _fetching:
        _tables.clear()
        _async_locks.clear()
