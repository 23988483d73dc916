"""Session read-your-writes: in shadow a Session's commits are savepoints in a pinned connection.

``SessionTransaction._connection_for_bind`` gives a Session in shadow one connection per
engine (its *pin*) with a transaction open, and makes each Session transaction a savepoint
in it: after ``commit()`` the Session still sees its rows (generated ids, server defaults,
later queries). The savepoint's release is where the commit is validated and recorded.
A Session joined to a connection in a transaction the primary began gets a savepoint of
its own in it, whatever its ``join_transaction_mode``: its commit and rollback then never
end the primary's transaction. The pin is released when the Session closes or, at the
latest, when the outermost shadow scope ends (:mod:`._session_state`). On an autocommit
engine there is no transaction to pin: each write is refused, as on any autocommit
connection.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm.session import SessionTransaction

from shadowguard.contract import PROCESS, Kind, record, scope_now
from shadowguard.integrations.sqlalchemy._connection import (
    commit_detail,
    drop_without_io,
    in_greenlet,
    is_autocommit,
    pinned_connections,
    short,
    tables,
    target,
)
from shadowguard.integrations.sqlalchemy._pool import PENDING_WRITES, TARGET
from shadowguard.integrations.sqlalchemy._registry import PATCHES
from shadowguard.integrations.sqlalchemy._transaction import began_in_shadow

__all__ = [
    "make_close_impl",
    "make_connection_for_bind",
    "make_session_commit",
    "release_pins",
    "unpin_all",
]

# Set on an error the savepoint release already recorded, so the commit does not again.
_RECORDED = "_shadowguard_recorded"


class _Pin:
    """A Session's connection to one engine, held open across its shadow transactions."""

    __slots__ = ("commit_savepoints", "conn")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        #: Names of the savepoints that stand for a Session transaction (its commit).
        self.commit_savepoints: set[str] = set()


_pins: weakref.WeakKeyDictionary[Session, dict[Engine, _Pin]] = weakref.WeakKeyDictionary()


def make_connection_for_bind(
    original: Callable[..., Connection], touch: Callable[[Session], None]
) -> Callable[..., Connection]:
    """Wrap ``SessionTransaction._connection_for_bind``: in shadow, a savepoint in the pin.

    ``touch`` is told first (:func:`._session_state.touch`).
    """

    def _connection_for_bind(
        self: SessionTransaction, bind: Any, execution_options: Any
    ) -> Connection:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, bind, execution_options)
        touch(self.session)
        if self._parent is not None or bind in self._connections:
            return original(self, bind, execution_options)
        if isinstance(bind, Connection):
            if not bind.in_transaction() or began_in_shadow(bind) or scope_now() is None:
                return original(self, bind, execution_options)
            # The primary's transaction: the Session's own ends must stay inside it.
            return _as_savepoint(self, original, bind, execution_options)
        if not isinstance(bind, Engine) or self.session.twophase:
            return original(self, bind, execution_options)
        pin = _pin_for(self.session, bind)
        if pin is None:
            return original(self, bind, execution_options)
        conn = _as_savepoint(self, original, pin.conn, execution_options)
        savepoint = getattr(self._connections[conn][1], "_savepoint", None)
        if savepoint is not None:
            pin.commit_savepoints.add(savepoint)
        conn.connection.info.pop(PENDING_WRITES, None)
        return conn

    return _connection_for_bind


def _as_savepoint(
    trans: SessionTransaction,
    original: Callable[..., Connection],
    conn: Connection,
    execution_options: Any,
) -> Connection:
    session = trans.session
    mode = session.join_transaction_mode
    session.join_transaction_mode = "create_savepoint"
    try:
        return original(trans, conn, execution_options)
    finally:
        session.join_transaction_mode = mode


def _pin_for(session: Session, engine: Engine) -> _Pin | None:
    """The Session's pin to ``engine``; None on an autocommit engine (nothing to hold)."""
    with PATCHES.lock:
        pins = _pins.setdefault(session, {})
        pin = pins.get(engine)
    if pin is not None and not pin.conn.closed and not pin.conn.invalidated:
        if not pin.conn.in_transaction():
            pin.conn.begin()
        return pin
    conn = engine.connect()
    if is_autocommit(conn):
        conn.close()
        return None
    try:
        conn.begin()
        pin = _Pin(conn)
        pinned_connections.add(conn)
        event.listen(conn, "release_savepoint", functools.partial(_on_savepoint_release, pin))
    except BaseException:
        conn.close()
        raise
    with PATCHES.lock:
        pins[engine] = pin
    return pin


def _on_savepoint_release(pin: _Pin, conn: Connection, name: str, context: Any) -> None:
    """The savepoint standing for a Session's commit: validate, then keep the rows."""
    if name not in pin.commit_savepoints:
        return
    pin.commit_savepoints.discard(name)
    info = conn.connection.info
    error: BaseException | None = None
    if conn.dialect.name == "postgresql" and info.get(PENDING_WRITES):
        check = conn.begin_nested()
        try:
            conn.exec_driver_sql("SET CONSTRAINTS ALL IMMEDIATE")
        except sa_exc.DBAPIError as exc:
            error = exc
        finally:
            # Rolling the check back restores each constraint's deferral mode.
            check.rollback()
        if error is not None:
            # As on the primary, a failed commit leaves none of the transaction's rows.
            conn.dialect.do_rollback_to_savepoint(conn, name)
    where = info.get(TARGET) or target(conn)
    record(Kind.DB_COMMIT, where, "commit", commit_detail(info, "savepoint"), error=error)
    if error is not None:
        setattr(error, _RECORDED, True)
        raise error


def make_session_commit(
    original: Callable[..., None], touch: Callable[[Session], None]
) -> Callable[..., None]:
    """Wrap ``SessionTransaction.commit``: a flush that fails in it is recorded."""

    # SessionTransaction.commit(self, _to_root=False): the same signature, no repacking.
    def commit(self: SessionTransaction, _to_root: bool = False) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, _to_root)
        touch(self.session)
        try:
            return original(self, _to_root)
        except sa_exc.StatementError as exc:
            # A flush that fails inside commit(): the commit the primary would have tried.
            if not getattr(exc, _RECORDED, False):
                conns = [c for c in self._connections.values() if isinstance(c, tuple)]
                where = target(conns[0][0]) if conns else "session"
                statements = (short(str(exc.statement or "")),)
                detail = {
                    "statements": statements,
                    "tables": tables(statements),
                    "suppressed_by": "error",
                }
                record(Kind.DB_COMMIT, where, "commit", detail, error=exc)
            raise

    return commit


def make_close_impl(
    original: Callable[..., None], touch: Callable[[Session], None]
) -> Callable[..., None]:
    """Wrap ``Session._close_impl`` (close, reset, invalidate): it releases the pins."""

    # No pass-through: a Session used in shadow may be closed by primary code. The
    # signature is Session._close_impl's; ``_pins.data`` is read rather than the mapping's
    # own __len__, a Python call on every primary close.
    def _close_impl(self: Session, invalidate: bool, is_reset: bool = False) -> None:
        if scope_now() is not None or PROCESS.shadow:
            touch(self)
        try:
            original(self, invalidate, is_reset)
        finally:
            if _pins.data and self in _pins:  # type: ignore[attr-defined]  # not in typeshed
                release_pins(self)

    return _close_impl


def release_pins(session: Session) -> None:
    """Roll back and release every pin of ``session``."""
    with PATCHES.lock:
        pins = _pins.pop(session, None)
    for pin in (pins or {}).values():
        try:
            _release(pin.conn)
        except BaseException:
            # Fail closed: the pool discards a connection that could not be cleaned.
            if not pin.conn.closed:
                pin.conn.invalidate()
            raise


def _release(conn: Connection) -> None:
    if conn.closed:
        return
    if conn.dialect.is_async and not in_greenlet():
        drop_without_io(conn)
        return
    try:
        conn.rollback()
    finally:
        conn.close()


def unpin_all() -> None:
    """Roll back and release the pins of every Session (``uninstall()``)."""
    with PATCHES.lock:
        sessions = list(_pins.keys())
    for session in sessions:
        release_pins(session)
