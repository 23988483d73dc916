"""SQLAlchemy guard: in shadow, every statement runs and is validated, nothing is committed.

The seams, from the lowest up, one module each:

- :mod:`._dialect`: the dialect's ``do_execute``/``do_executemany``/
  ``do_execute_no_params`` refuse, before execution, what no rollback undoes (DDL,
  transaction control in text, MySQL's implicit commits, writes on an autocommit
  connection, ...: the classifier is :mod:`shadowguard._statements`); ``do_commit`` (every
  root commit, and a pool's commit-on-return) validates and rolls back instead, recording
  a ``db.commit`` suppression; the two-phase methods of ``Connection`` refuse.
- :mod:`._connection`: a connection's part in a shadow scope: noted at its first
  statement, a savepoint when the primary has a transaction open on it, rolled back (to
  that savepoint only) and its session state restored when the scope ends.
- :mod:`._transaction`: shadow code ends only root transactions it began; ending the
  primary's (``commit()``, ``rollback()``, ``close()``) is refused.
- :mod:`._session`: Session read-your-writes: in shadow a Session keeps one connection per
  engine with a transaction open (its pin), and each Session transaction is a savepoint in
  it; joined to the primary's connection, a savepoint inside its transaction.
- :mod:`._session_state`: a Session shadow code touches is taken for the scope and put
  back when it ends (nothing the shadow added, changed or deleted stays in it); one
  that holds the primary's work is refused.
- :mod:`._scope_end`: the scope's end, in order: Sessions, then connections.
- :mod:`._pool`: the pool's reset of a returned connection: rolled back and, on
  PostgreSQL, its session state put back (:mod:`._pg_state`).
- :mod:`._raw`: raw DBAPI connections: the pool proxy's ``commit()`` refused in shadow;
  one checked out in shadow is cleaned like a connection.

:mod:`._registry` holds the patch registry the modules share. No ``guard()``: every seam
is on a class, so objects created before :func:`install` are guarded too.
"""

from __future__ import annotations

from typing import Any

from shadowguard.contract import missing_extra_error

try:
    from sqlalchemy.orm import Session
    from sqlalchemy.orm.session import SessionTransaction
    from sqlalchemy.pool import base as pool_base
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise missing_extra_error("sqlalchemy", "sqlalchemy") from exc

from shadowguard._statements import READ, REFUSE, SESSION, TXN, UNKNOWN, WRITE, classify, rank
from shadowguard.integrations.sqlalchemy import _session
from shadowguard.integrations.sqlalchemy._dialect import refuse_twophase, wrap_dialect_classes
from shadowguard.integrations.sqlalchemy._pool import make_fairy_reset
from shadowguard.integrations.sqlalchemy._raw import guard_raw_connections
from shadowguard.integrations.sqlalchemy._registry import PATCHES as _patches
from shadowguard.integrations.sqlalchemy._session_state import guard_sessions, touch
from shadowguard.integrations.sqlalchemy._transaction import guard_root_transactions

__all__ = ["install", "uninstall"]
# The statement classifier, still importable from here, where it was before it moved to
# the core (``shadowguard._statements``) for every database guard.
__all__ += ["READ", "REFUSE", "SESSION", "TXN", "UNKNOWN", "WRITE", "classify", "rank"]


def install(**options: Any) -> None:
    """Guard every SQLAlchemy engine, connection and session, existing and future.

    Idempotent. Takes no options.
    """
    _patches.install(_apply, options)


def _apply() -> None:
    wrap_dialect_classes()
    refuse_twophase()
    guard_root_transactions()
    _patches.setattr(
        SessionTransaction,
        "_connection_for_bind",
        _session.make_connection_for_bind(SessionTransaction._connection_for_bind, touch),
    )
    _patches.setattr(
        SessionTransaction, "commit", _session.make_session_commit(SessionTransaction.commit, touch)
    )
    _patches.setattr(Session, "_close_impl", _session.make_close_impl(Session._close_impl, touch))
    guard_sessions()
    _patches.setattr(
        pool_base._ConnectionFairy, "_reset", make_fairy_reset(pool_base._ConnectionFairy._reset)
    )
    guard_raw_connections()


def uninstall() -> None:
    """Remove every patch and listener :func:`install` made.

    Connections that Sessions still hold for shadow work are rolled back and released
    first, through the guarded pool reset, so they too leave nothing behind.
    """
    _session.unpin_all()
    _patches.uninstall()
