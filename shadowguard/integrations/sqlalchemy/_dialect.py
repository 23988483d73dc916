"""The dialect seam: every statement and every root commit of every SQLAlchemy dialect.

In shadow, ``do_execute``/``do_executemany``/``do_execute_no_params`` refuse, before
execution, what no rollback undoes: DDL, transaction control in SQL text, two-phase
statements, non-transactional functions, MySQL's implicit commits (every statement of a
SQL string is classified by :mod:`shadowguard._statements`) and any write on an
autocommit connection. ``do_commit`` (every root commit, and a pool's commit-on-return)
validates what is pending (on PostgreSQL ``SET CONSTRAINTS ALL IMMEDIATE``) and rolls
back instead. The two-phase methods of :class:`~sqlalchemy.engine.Connection` refuse.
Session state (``SET``, MySQL's ``GET_LOCK()``) is refused on every dialect but
PostgreSQL, where :mod:`._pg_state` puts it back.

Every dialect class that defines one of these methods itself is wrapped: those imported
before ``install()`` at once, later ones at their first connection or statement.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.pool import base as pool_base

from shadowguard._statements import AUTOCOMMIT_OK, MYSQL_DIALECTS, REFUSE, SESSION, classify
from shadowguard.contract import PROCESS, Kind, is_wrapped, mark_wrapped, record, refuse, scope_now
from shadowguard.errors import ShadowGuardError, ShadowSideEffectBlocked
from shadowguard.integrations.sqlalchemy._connection import (
    commit_detail,
    is_autocommit,
    note_statement,
    roll_back_to_savepoint,
    short,
    tables,
    target,
)
from shadowguard.integrations.sqlalchemy._pool import PENDING_WRITES, PRIMARY_SAVEPOINT, TARGET
from shadowguard.integrations.sqlalchemy._registry import PATCHES

__all__ = ["refuse_twophase", "wrap_dialect_class", "wrap_dialect_classes"]

_GUARDED = ("do_commit", "do_execute", "do_executemany", "do_execute_no_params")
# MySQL's named locks are held by the session, past the rollback and the pool's check-in.
_MYSQL_LOCK = re.compile(r"\bget_lock\s*\(", re.I)


def wrap_dialect_classes() -> None:
    """Wrap every dialect class there is, and every later one at its first connection."""
    for cls in (*_all_subclasses(DefaultDialect), pool_base._ConnDialect):
        wrap_dialect_class(cls)
    event.listen(DefaultDialect, "do_connect", _on_connect)
    PATCHES.add(
        "event DefaultDialect.do_connect",
        functools.partial(event.remove, DefaultDialect, "do_connect", _on_connect),
    )


def _all_subclasses(cls: type) -> list[type]:
    found: list[type] = []
    todo = [cls]
    while todo:
        klass = todo.pop()
        found.append(klass)
        todo.extend(klass.__subclasses__())
    return found


def _on_connect(dialect: Any, conn_rec: Any, cargs: Any, cparams: Any) -> None:
    # Each new DBAPI connection: a dialect class imported after install() is wrapped
    # before its first statement.
    _ensure_dialect_wrapped(dialect)


def wrap_dialect_class(cls: type) -> None:
    """Wrap every guarded method that ``cls`` defines itself (idempotent)."""
    if not issubclass(cls, DefaultDialect) and cls is not pool_base._ConnDialect:
        raise ShadowGuardError(
            f"shadowguard cannot guard the dialect {cls.__qualname__}: it does not derive "
            "from sqlalchemy's DefaultDialect. Keep engines using it out of shadow traffic"
        )
    with PATCHES.lock:
        for name in _GUARDED:
            own = vars(cls).get(name)
            if own is not None and not is_wrapped(own):
                PATCHES.setattr(cls, name, _WRAPPERS[name](own))


def _ensure_dialect_wrapped(dialect: Any) -> None:
    cls = type(dialect)
    if all(is_wrapped(getattr(cls, name, None)) for name in _GUARDED):
        return
    with PATCHES.lock:
        if not PATCHES.installed:
            return  # a statement still in flight when uninstall() ran: patch nothing again
        # a dialect class defined after install() that overrides a guarded method
        if not issubclass(cls, DefaultDialect):
            wrap_dialect_class(cls)  # raises: not a DefaultDialect
        for klass in cls.__mro__:
            if issubclass(klass, DefaultDialect):
                wrap_dialect_class(klass)


# -- statements ------------------------------------------------------------------------


def _make_do_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    def do_execute(
        self: Any, cursor: Any, statement: str, parameters: Any, context: Any = None
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, cursor, statement, parameters, context)
        _check_statement(self, cursor, statement, parameters, context)
        return original(self, cursor, statement, parameters, context)

    mark_wrapped(do_execute, original)
    return do_execute


def _make_do_execute_no_params(original: Callable[..., Any]) -> Callable[..., Any]:
    def do_execute_no_params(self: Any, cursor: Any, statement: str, context: Any = None) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, cursor, statement, context)
        _check_statement(self, cursor, statement, None, context)
        return original(self, cursor, statement, context)

    mark_wrapped(do_execute_no_params, original)
    return do_execute_no_params


def _check_statement(
    dialect: Any, cursor: Any, statement: str, parameters: Any, context: Any
) -> None:
    """Refuse a shadow statement no rollback would undo; note the others on the connection."""
    _ensure_dialect_wrapped(dialect)
    kind, verb = classify(statement, dialect.name)
    conn: Connection | None = getattr(context, "root_connection", None)
    if conn is None:
        # not a statement of a Connection (dialect internals): refuse only the worst
        if kind == REFUSE:
            raise _refusal(
                _dialect_target(dialect), f"{verb} (a rollback cannot undo it)", statement
            )
        return
    if kind == REFUSE:
        raise _refusal(
            target(conn),
            f"{verb} on {target(conn)} (a rollback cannot undo it)",
            statement,
            remedy="Run schema changes, transaction control and non-transactional functions "
            "(setval, dblink, ...) outside shadow traffic",
        )
    if dialect.name != "postgresql" and (
        kind == SESSION or (dialect.name in MYSQL_DIALECTS and _MYSQL_LOCK.search(statement))
    ):
        raise _refusal(
            target(conn),
            f"{verb} on {target(conn)}: it changes the connection's session, which outlives "
            "the rollback and the connection's return to the pool (shadowguard puts session "
            "state back on PostgreSQL only)",
            statement,
            remedy="Make session settings in a connect hook (the pool's 'connect' event), "
            "where they apply to primary and shadow traffic alike, or outside shadow traffic",
        )
    autocommit = is_autocommit(conn)
    if autocommit and kind not in AUTOCOMMIT_OK:
        raise _refusal(
            target(conn),
            f"{verb} on an AUTOCOMMIT connection to {target(conn)} (it would persist at once)",
            statement,
            remedy="Use a connection in a transaction (no isolation_level='AUTOCOMMIT') "
            "for writes that shadow traffic makes",
        )
    note_statement(conn, cursor, statement, parameters, kind, verb, autocommit)


def _refusal(
    where: str, what: str, statement: str, remedy: str | None = None
) -> ShadowSideEffectBlocked:
    detail = {"statements": (short(statement),), "tables": tables((statement,))}
    return refuse(Kind.DB_COMMIT, where, "execute", what, remedy=remedy, detail=detail)


def _dialect_target(dialect: Any) -> str:
    name = getattr(dialect, "name", None)
    return f"{name}+{dialect.driver}" if name else "a connection pool without an engine"


# -- commit ----------------------------------------------------------------------------


def _make_do_commit(original: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    def do_commit(self: Any, dbapi_connection: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, dbapi_connection)
        _shadow_commit(self, dbapi_connection)
        return None

    mark_wrapped(do_commit, original)
    return do_commit


def _shadow_commit(dialect: Any, dbapi_connection: Any) -> None:
    """A root commit in shadow: validate what is pending, then roll back."""
    try:
        info = dbapi_connection.info
    except (AttributeError, NotImplementedError):  # a connection outside the pool
        info = {}
    if not isinstance(info, dict):
        info = {}
    error: BaseException | None = None
    try:
        if getattr(dialect, "name", "") == "postgresql" and info.get(PENDING_WRITES):
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            finally:
                cursor.close()
    except Exception as exc:
        error = exc
    try:
        if info.get(PRIMARY_SAVEPOINT):
            # The transaction is the primary's: its writes stay pending (so does the
            # savepoint, for the rest of the scope); the rollback also undoes the SET.
            roll_back_to_savepoint(dbapi_connection, release=False)
        else:
            dialect.do_rollback(dbapi_connection)
    finally:
        where = info.get(TARGET) or _dialect_target(dialect)
        record(Kind.DB_COMMIT, where, "commit", commit_detail(info, "rollback"), error=error)
    if error is not None:
        raise error


# -- two-phase commit ------------------------------------------------------------------


#: The two-phase methods of Connection: (attribute, operation recorded, name in messages).
_TWOPHASE = (
    ("begin_twophase", "begin_twophase", "begin_twophase"),
    ("_prepare_twophase_impl", "prepare_twophase", "_prepare_twophase_impl"),
    ("_commit_twophase_impl", "commit_twophase", "_commit_twophase_impl"),
    ("commit_prepared", "commit_prepared", "COMMIT PREPARED"),
)


def refuse_twophase() -> None:
    """Make every two-phase method of Connection refuse in shadow."""
    for attribute, operation, name in _TWOPHASE:
        original = getattr(Connection, attribute)
        PATCHES.setattr(Connection, attribute, _refuse_twophase(original, operation, name))


def _refuse_twophase(original: Callable[..., Any], operation: str, name: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, *args, **kwargs)
        raise refuse(
            Kind.DB_COMMIT,
            target(self),
            operation,
            f"two-phase commit ({name}) on {target(self)}: a prepared transaction "
            "outlives the connection and a rollback cannot undo it",
            remedy="Keep two-phase transactions (Session(twophase=True)) out of shadow traffic",
        )

    mark_wrapped(guarded, original)
    return guarded


_WRAPPERS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "do_commit": _make_do_commit,
    "do_execute": _make_do_execute,
    "do_executemany": _make_do_execute,
    "do_execute_no_params": _make_do_execute_no_params,
}
