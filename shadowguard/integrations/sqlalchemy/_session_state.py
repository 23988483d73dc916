"""A Session's part in a shadow scope: taken at its first shadow use, put back at the scope's end.

The first thing shadow code does to a Session (adding, deleting or merging an object,
changing an attribute of one of its objects, a query, a flush, a commit, a rollback,
expiring or expunging) *touches* it. A Session that holds nothing of the primary's then
belongs to the scope until it ends: the scope's end rolls it back (its new objects leave
it, its deleted ones come back, its changed ones are expired), releases its pins and
expires what it loaded, so nothing the shadow left in it, flushed or not, reaches a
later primary flush, even when the Session outlives the request (a worker's Session, a
``scoped_session`` never removed).

A Session that holds the primary's work (an open transaction that ran statements,
unflushed objects, an explicit or nested transaction) is refused at the first touch: the
shadow would flush the primary's objects, or commit or roll back its transaction, and no
end of scope could give the primary its state back.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.orm.session import SessionTransaction, SessionTransactionOrigin, _sessions
from sqlalchemy.orm.state import InstanceState

from shadowguard.contract import PROCESS, Kind, Scope, mark_wrapped, refuse, scope_now
from shadowguard.integrations.sqlalchemy._connection import drop_without_io, in_greenlet
from shadowguard.integrations.sqlalchemy._registry import PATCHES
from shadowguard.integrations.sqlalchemy._scope_end import SESSIONS, at_scope_end
from shadowguard.integrations.sqlalchemy._session import release_pins

__all__ = ["guard_sessions", "touch"]

#: Session methods that change what it holds without going through a seam below.
_TOUCHING = (
    *("rollback", "begin_nested", "expire", "expire_all", "expunge", "expunge_all"),
    "refresh",  # expires before it loads
)

#: The outermost scopes that took each Session (one, unless Sessions are shared).
_taken: weakref.WeakKeyDictionary[Session, list[Scope]] = weakref.WeakKeyDictionary()


def guard_sessions() -> None:
    """Put :func:`touch` in front of the ways shadow code changes a Session.

    The others (``SessionTransaction._connection_for_bind`` and ``commit``,
    ``Session._close_impl``) call it from :mod:`._session`'s wrappers.
    """
    PATCHES.setattr(Session, "_autobegin_t", _make_autobegin_t(Session._autobegin_t))
    for name in _TOUCHING:
        PATCHES.setattr(Session, name, _touching(getattr(Session, name)))
    PATCHES.setattr(
        InstanceState, "_modified_event", _make_modified_event(InstanceState._modified_event)
    )


def _make_autobegin_t(original: Callable[..., Any]) -> Callable[..., Any]:
    # Every add, flush and autobegin: the narrowest signature, for the primary's sake.
    def _autobegin_t(self: Session, begin: bool = False) -> SessionTransaction:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, begin)  # type: ignore[no-any-return]
        touch(self)
        return original(self, begin)  # type: ignore[no-any-return]

    return mark_wrapped(_autobegin_t, original)


def _touching(original: Callable[..., Any]) -> Callable[..., Any]:
    def touching(self: Session, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, *args, **kwargs)
        touch(self)
        return original(self, *args, **kwargs)

    # expunge_all() and expire_all() run on every close: no argument packing for them.
    def touching_self(self: Session) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self)
        touch(self)
        return original(self)

    takes_self_only = list(inspect.signature(original).parameters) == ["self"]
    wrapper = touching_self if takes_self_only else touching
    functools.update_wrapper(wrapper, original)
    return mark_wrapped(wrapper, original)


def _make_modified_event(original: Callable[..., None]) -> Callable[..., None]:
    # Called on every attribute change of a mapped object: positional, as SQLAlchemy calls it.
    def _modified_event(
        self: InstanceState[Any],
        dict_: Any,
        attr: Any,
        previous: Any,
        collection: bool = False,
        is_userland: bool = False,
    ) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, dict_, attr, previous, collection, is_userland)
        session = _sessions.get(self.session_id) if self.session_id else None
        if session is not None:
            touch(session)
        return original(self, dict_, attr, previous, collection, is_userland)

    return mark_wrapped(_modified_event, original)


def touch(session: Session) -> None:
    """Shadow code is about to change ``session``: take it for the scope, or refuse."""
    scope = scope_now()
    if scope is None:
        return  # the whole process is shadow: there is no primary state to keep
    root = scope.root
    taken = _taken.get(session)
    if taken is not None and any(s is root for s in taken):
        return
    with PATCHES.lock:
        taken = _taken.get(session)
        if taken is None:
            if _holds_primary_work(session):
                raise _refusal(session)
            taken = _taken[session] = []
        elif any(s is root for s in taken):
            return
        at_scope_end(root, SESSIONS, functools.partial(_end_of_scope, weakref.ref(session), root))
        taken.append(root)


def _holds_primary_work(session: Session) -> bool:
    transaction = session._transaction
    if transaction is None:
        return False
    return (
        transaction.origin is not SessionTransactionOrigin.AUTOBEGIN
        or transaction._parent is not None
        or bool(transaction._connections)
        or bool(session._new)
        or bool(session._deleted)
        or bool(session.identity_map._modified)
    )


def _refusal(session: Session) -> Exception:
    bind = session.bind
    where = (
        bind.engine.url.render_as_string(hide_password=True)
        if bind is not None
        else "a Session without a bind"
    )
    return refuse(
        Kind.DB_COMMIT,
        where,
        "session",
        "shadow work on a Session that holds work of the primary (a transaction that ran "
        "statements, or unflushed changes): the shadow would flush, commit or roll back "
        "the primary's work",
        remedy="Do the shadow work in a Session of its own (Session(engine) inside the "
        "shadow block), or end the primary's transaction (commit(), rollback() or "
        "close()) before the block; close or remove() a Session kept across requests "
        "(a worker's Session, a scoped_session) after each request",
    )


def _end_of_scope(session_ref: weakref.ref[Session], root: Scope) -> None:
    """Put the Session back as the scope found it: nothing the shadow did stays in it."""
    session = session_ref()
    if session is None:
        return
    try:
        _roll_back(session)
        release_pins(session)
        # What the Session loaded from the shadow's transaction no longer exists: make
        # it reload rather than serve ghost rows.
        session.expire_all()
    except BaseException:
        # Fail closed: a Session that cannot be put back loses its objects and
        # connections rather than keep the shadow's for a later primary flush.
        try:
            session.invalidate()
        finally:
            release_pins(session)
        raise
    finally:
        with PATCHES.lock:
            taken = _taken.get(session)
            if taken is not None:
                taken[:] = [s for s in taken if s is not root]
                if not taken:
                    del _taken[session]


def _roll_back(session: Session) -> None:
    transaction = session._transaction
    if transaction is None:
        return
    connections: set[Connection] = {entry[0] for entry in transaction._connections.values()}
    if any(c.dialect.is_async for c in connections) and not in_greenlet():
        # No IO possible here: drop the connections (the server rolls back), then
        # roll back the Session's own state, which then needs none.
        for conn in connections:
            drop_without_io(conn)
    session.rollback()
