"""Whose transaction it is: shadow code ends only the root transactions that shadow code began.

``Connection._begin_impl`` marks a root transaction begun in shadow. A shadow
``commit()``, ``rollback()`` or ``close()`` of any other root transaction (shadow code on
the primary's own connection: a what-if block, a connection kept across requests) is
refused before it acts: it would end the primary's transaction, dropping the primary's
writes or leaving its ``with engine.begin():`` block without a transaction. The shadow's
statements inside the primary's transaction are undone when the scope ends, to the
savepoint :mod:`._connection` set before the first of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.engine.base import RootTransaction

from shadowguard.contract import PROCESS, Kind, mark_wrapped, refuse, scope_now
from shadowguard.integrations.sqlalchemy._registry import PATCHES

__all__ = ["began_in_shadow", "guard_root_transactions"]

#: The Connection attribute naming the root transaction shadow code began on it.
_SHADOW_TRANSACTION = "_shadowguard_shadow_transaction"
#: The RootTransaction methods that end it. Their ``_do_*`` implementations run under an
#: ``assert not self.is_active`` that would hide a refusal raised there.
_ENDINGS = ("commit", "rollback", "close")


def guard_root_transactions() -> None:
    """Mark root transactions begun in shadow; refuse ending the others in shadow."""
    PATCHES.setattr(Connection, "_begin_impl", _make_begin_impl(Connection._begin_impl))
    for name in _ENDINGS:
        original = getattr(RootTransaction, name)
        PATCHES.setattr(RootTransaction, name, _make_ending(original, name))
    # Connection.close() closes the connection even when ending its transaction raised.
    PATCHES.setattr(Connection, "close", _make_close(Connection.close))


def began_in_shadow(conn: Connection) -> bool:
    """Did shadow code begin the root transaction ``conn`` is in?"""
    transaction = conn._transaction
    return transaction is not None and vars(conn).get(_SHADOW_TRANSACTION) is transaction


def _make_begin_impl(original: Callable[[Connection, Any], None]) -> Callable[..., None]:
    def _begin_impl(self: Connection, transaction: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, transaction)
        original(self, transaction)
        setattr(self, _SHADOW_TRANSACTION, transaction)
        return None

    return mark_wrapped(_begin_impl, original)


def _make_ending(original: Callable[[Any], None], operation: str) -> Callable[[Any], None]:
    def ending(self: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return original(self)
        _refuse_ending_primary(self.connection, self, operation)
        return original(self)

    return mark_wrapped(ending, original)


def _make_close(original: Callable[[Connection], None]) -> Callable[[Connection], None]:
    def close(self: Connection) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return original(self)
        if self._transaction is not None:
            _refuse_ending_primary(self, self._transaction, "close")
        return original(self)

    return mark_wrapped(close, original)


def _refuse_ending_primary(conn: Connection, transaction: Any, operation: str) -> None:
    if (
        scope_now() is None  # the whole process is shadow: there is no primary
        or not transaction.is_active
        or vars(conn).get(_SHADOW_TRANSACTION) is transaction
    ):
        return
    where = conn.engine.url.render_as_string(hide_password=True)
    raise refuse(
        Kind.DB_COMMIT,
        where,
        operation,
        f"{operation}() in shadow of a transaction the primary began on {where}: "
        "it would end the primary's transaction",
        remedy="Give the shadow work a connection of its own (engine.connect() "
        "inside the shadow block); what the shadow ran in the primary's "
        "transaction is undone when the scope ends",
    )
