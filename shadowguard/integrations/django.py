"""Django ORM guard: shadow requests write only inside transactions that are rolled back.

:class:`ShadowTransactions` opens an atomic block on every database alias and rolls it
back at the end, so the database validates every write (constraints, triggers) and later
reads in the same request see earlier writes, yet nothing commits and
``transaction.on_commit`` callbacks never run. An execute wrapper
(``connection.execute_wrappers``) records what would have committed and refuses, in
shadow, every write on a connection outside such a transaction, and everywhere what no
rollback undoes: raw transaction control, several statements in one call, and what the
core classifier (``shadowguard._statements``) refuses, such as DDL and, on MySQL and
MariaDB, every statement that commits the open transaction first.

There is no ``guard(obj)``: the wrapper is added to every connection, including those
opened before :func:`install`, and :class:`ShadowTransactions` is the per-block form.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from shadowguard import _sql
from shadowguard._statements import AUTOCOMMIT_OK, REFUSE, classify
from shadowguard.contract import (
    PROCESS,
    Kind,
    Patches,
    ShadowSideEffectBlocked,
    missing_extra_error,
    record,
    refuse,
    scope_now,
)

try:
    from django.db import connections, transaction
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.signals import connection_created
except ImportError as exc:  # pragma: no cover - exercised without Django installed
    raise missing_extra_error("django", "django") from exc

__all__ = ["ShadowTransactions", "install", "is_write", "uninstall"]

logger = logging.getLogger("shadowguard")

_DEPTH_ATTR = "_shadowguard_transaction_depth"
_ROLLED_BACK_ATTR = "_shadowguard_rolled_back_savepoint"
_SAVEPOINTS_ATTR = "_shadowguard_savepoints"
_patches = Patches("django")

#: ``connection.vendor`` to the classifier's dialect; another vendor is read every way.
_DIALECTS = {"postgresql": "postgresql", "mysql": "mysql", "sqlite": "sqlite"}
# What may run outside a shadow transaction: a statement of the core's harmless kinds
# that starts with one of these. The core also counts LISTEN, RESET, CLOSE, LOCK, START,
# TABLE, FETCH and PRAGMA harmless (the SQLAlchemy guard's pool clean-up undoes session
# state), but a Django connection serves the next request as it is left: this guard
# keeps its narrower list.
_RUN_ALONE = frozenset(
    {
        *("SELECT", "SHOW", "EXPLAIN", "VALUES", "WITH", "SET"),
        *("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK"),
    }
)
# A WITH that writes; REPLACE INTO too (SQLite runs WITH ... REPLACE INTO).
_WITH_WRITES = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE|TRUNCATE|REPLACE\s+INTO)\b", re.I)
_BACKTICK_NAME = re.compile(r"`((?:[^`]|``)+)`\s*\Z")
_REMEDY = (
    "In shadow traffic Django writes run only inside the transactions that "
    "shadowguard rolls back: serve the request through "
    "shadowguard.middleware.django.ShadowGuardMiddleware, or wrap the code in "
    "shadowguard.integrations.django.ShadowTransactions()"
)
_NOT_UNDONE_REMEDY = (
    "No rollback undoes it (DDL, locks, server settings; on MySQL and MariaDB every "
    "statement that commits the open transaction first): run it outside shadow traffic"
)

Reading = tuple[list[str], _sql.Syntax]


def _text(sql: object) -> str:
    return sql if isinstance(sql, str) else str(sql)


def _readings(sql: str, dialect: str) -> list[Reading]:
    """The statements of ``sql`` in every reading the vendor's server may apply."""
    return [(_sql.split(sql, syntax), syntax) for syntax in _sql.readings(sql, dialect)]


def _writes(kind: str, readings: list[Reading]) -> bool:
    """Must the SQL run inside a shadow transaction? Unknown statements count as writes."""
    return kind not in AUTOCOMMIT_OK or any(
        not statements or any(not _runs_alone(s, syntax) for s in statements)
        for statements, syntax in readings
    )


def _runs_alone(statement: str, syntax: _sql.Syntax) -> bool:
    words = _sql.keywords(statement, 1, syntax)
    keyword = words[0] if words else ""
    return keyword in _RUN_ALONE and not (keyword == "WITH" and _WITH_WRITES.search(statement))


def is_write(sql: object, vendor: str = "") -> bool:
    """Could this SQL persist something? Unknown statements count as writes, and so does
    a string of several statements with any write among them. ``vendor`` (Django's
    ``connection.vendor``) picks the quoting rules; by default every one is tried."""
    text = _text(sql)
    dialect = _DIALECTS.get(vendor, "")
    return _writes(classify(text, dialect)[0], _readings(text, dialect))


def _guard(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    if scope_now() is None and not PROCESS.shadow:
        return execute(sql, params, many, context)
    connection: BaseDatabaseWrapper = context["connection"]
    depth = getattr(connection, _DEPTH_ATTR, None)
    if depth is None and not _patches.installed:
        return execute(sql, params, many, context)
    text = _text(sql)
    dialect = _DIALECTS.get(connection.vendor, "")
    readings = _readings(text, dialect)
    most = max(len(statements) for statements, _ in readings)
    if most > 1:
        # A second statement could commit, or write outside the shadow transaction, unseen.
        raise _refuse(
            connection,
            text,
            f"{most} SQL statements in one execute() call",
            remedy="Run one statement per execute() call in shadow traffic, so each is judged",
        )
    # Each reading the server may apply is judged; the first one's is what gets recorded.
    judged = [_judge(connection, text, statements, syntax) for statements, syntax in readings]
    kind, verb = classify(text, dialect)
    if kind == REFUSE:
        raise _refuse(connection, text, f"{verb} in shadow traffic", remedy=_NOT_UNDONE_REMEDY)
    writes = _writes(kind, readings)
    if depth is not None and connection.in_atomic_block:
        _in_shadow_transaction(connection, depth, text, judged, writes)
    elif writes:
        keyword = judged[0][0]
        raise _refuse(
            connection, text, f"a database write ({keyword or '?'}) outside a shadow transaction"
        )
    return execute(sql, params, many, context)


def _judge(
    connection: BaseDatabaseWrapper, text: str, statements: list[str], syntax: _sql.Syntax
) -> tuple[str, str | None]:
    """``(keyword, savepoint name)`` of a single (or no) statement; refuses one that ends
    the transaction."""
    statement = statements[0] if statements else ""
    words = _sql.keywords(statement, syntax=syntax)
    if _ends_transaction(words):
        raise _refuse(
            connection,
            text,
            f"a raw transaction statement ({' '.join(words)})",
            remedy="End transactions through Django (transaction.atomic), which shadowguard "
            "turns into a rollback in shadow traffic; never with raw COMMIT/ROLLBACK SQL",
        )
    keyword = words[0] if words else ""
    if keyword not in ("RELEASE", "ROLLBACK"):
        return keyword, None
    return keyword, _savepoint_name(statement, syntax)


def _ends_transaction(words: list[str]) -> bool:
    """COMMIT, END, ABORT, ROLLBACK without TO, PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED."""
    if not words:
        return False
    if words[0] in ("COMMIT", "END", "ABORT"):
        return True
    if words[0] == "ROLLBACK":
        return "TO" not in words
    return words[0] == "PREPARE" and words[1:2] == ["TRANSACTION"]


def _savepoint_name(statement: str, syntax: _sql.Syntax) -> str | None:
    """The savepoint a RELEASE or ROLLBACK TO names as the server resolves it; None if unsure."""
    name = _sql.last_name(statement, syntax)
    if name is None and syntax.mysql:
        # Django quotes MySQL savepoints with backticks, which _sql.last_name does not
        # read; MySQL compares savepoint names without regard to case.
        quoted = _BACKTICK_NAME.search(statement)
        if quoted is not None:
            return quoted.group(1).replace("``", "`").lower()
    return name


def _in_shadow_transaction(
    connection: BaseDatabaseWrapper,
    depth: int,
    text: str,
    judged: list[tuple[str, str | None]],
    writes: bool,
) -> None:
    """Refuse ending the shadow transaction's savepoint; record what would have committed."""
    level = len(connection.atomic_blocks)
    for keyword, name in judged:
        if (
            level >= depth
            and keyword in ("RELEASE", "ROLLBACK")
            and (name is None or name in getattr(connection, _SAVEPOINTS_ATTR, ()))
        ):
            # Releasing the savepoint that is the shadow transaction (or one around
            # it) would hand its writes to a transaction that may commit.
            raise _refuse(
                connection,
                text,
                f"a raw {keyword} of the shadow transaction's savepoint",
                remedy="Use savepoints of your own (transaction.atomic() or "
                "transaction.savepoint()); the shadow transaction's are not yours to end",
            )
    if level != depth:
        return
    # At the shadow transaction's own level, a write would have been an autocommit and
    # a savepoint release the commit of the application's outermost atomic block.
    keyword, name = judged[0]
    detail: dict[str, Any] = {"database": connection.alias, "vendor": connection.vendor}
    if keyword == "ROLLBACK":
        # Django releases a savepoint right after rolling back to it: not a commit.
        setattr(connection, _ROLLED_BACK_ATTR, name)
    elif keyword == "RELEASE":
        if getattr(connection, _ROLLED_BACK_ATTR, None) != name:
            detail.update(atomic=True, suppressed_by="rollback")
            record(Kind.DB_COMMIT, connection.alias, "commit", detail)
    elif writes:
        detail.update(statements=(text,), autocommit=True, suppressed_by="rollback")
        record(Kind.DB_COMMIT, connection.alias, "execute", detail)


def _refuse(
    connection: BaseDatabaseWrapper, text: str, what: str, remedy: str = _REMEDY
) -> ShadowSideEffectBlocked:
    detail = {"database": connection.alias, "vendor": connection.vendor, "statements": (text,)}
    return refuse(
        Kind.DB_COMMIT,
        connection.alias,
        "execute",
        f"{what} on Django database {connection.alias!r}",
        remedy=remedy,
        detail=detail,
    )


def _add_guard(connection: BaseDatabaseWrapper) -> bool:
    if _guard in connection.execute_wrappers:
        return False
    # First in the list is outermost: it sees each statement before any other wrapper.
    connection.execute_wrappers.insert(0, _guard)
    return True


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    _add_guard(connection)


class ShadowTransactions:
    """Run Django database work in transactions that are rolled back, on every alias.

    ``begin()`` and ``end()`` must run in the thread that uses the connections (Django
    connections belong to a thread); it is also a context manager::

        with shadowguard.shadow(), ShadowTransactions():
            Order.objects.create(ref="A-1")  # validated by the database, then rolled back
    """

    def __init__(self, using: Iterable[str] | None = None) -> None:
        self.using = list(using) if using is not None else None
        self._opened: list[tuple[str, transaction.Atomic, bool, int | None, Any]] = []
        self._thread: int | None = None

    def begin(self) -> None:
        """Open an atomic block on each alias (connecting to the database if needed)."""
        self._thread = threading.get_ident()
        try:
            for alias in self.using if self.using is not None else list(connections):
                connection = connections[alias]
                added = _add_guard(connection)
                outer = getattr(connection, _DEPTH_ATTR, None)
                outer_savepoints = getattr(connection, _SAVEPOINTS_ATTR, None)
                atomic = transaction.atomic(using=alias)
                # Lets durable=True blocks nest inside, as under Django's TestCase.
                atomic._from_testcase = True
                atomic.__enter__()
                setattr(connection, _DEPTH_ATTR, len(connection.atomic_blocks))
                savepoints = frozenset(sid for sid in connection.savepoint_ids if sid)
                setattr(connection, _SAVEPOINTS_ATTR, savepoints)
                self._opened.append((alias, atomic, added, outer, outer_savepoints))
        except BaseException:
            self.end()
            raise

    def end(self) -> None:
        """Roll every transaction back (idempotent); on_commit callbacks are discarded."""
        if self._opened and self._thread != threading.get_ident():
            # Django connections belong to their thread: touching this thread's would be
            # wrong. Nothing commits: the open transaction dies with its connection.
            logger.error(
                "shadowguard: shadow transactions cannot be ended from another thread; "
                "they are rolled back when their connection closes"
            )
            return
        errors: list[BaseException] = []
        while self._opened:
            alias, atomic, added, outer, outer_savepoints = self._opened.pop()
            connection = connections[alias]
            try:
                if connection.in_atomic_block:
                    transaction.set_rollback(True, using=alias)
                atomic.__exit__(None, None, None)
            except Exception as exc:
                errors.append(exc)
            finally:
                if outer is not None:
                    setattr(connection, _DEPTH_ATTR, outer)
                    setattr(connection, _SAVEPOINTS_ATTR, outer_savepoints)
                else:
                    for attr in (_DEPTH_ATTR, _SAVEPOINTS_ATTR):
                        if hasattr(connection, attr):
                            delattr(connection, attr)
                if added and not _patches.installed and _guard in connection.execute_wrappers:
                    connection.execute_wrappers.remove(_guard)
        if errors:
            raise errors[0]

    def __enter__(self) -> ShadowTransactions:
        self.begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end()


def _apply() -> None:
    connection_created.connect(_on_connection_created, dispatch_uid="shadowguard")
    _patches.add("django.db.backends.signals.connection_created", _disconnect)
    from django.conf import settings

    if settings.configured:
        # Connections opened before install() get the guard too.
        for connection in connections.all(initialized_only=True):
            if _add_guard(connection):
                _patches.add(
                    f"execute_wrappers of Django database {connection.alias!r}",
                    functools.partial(_remove_guard, connection),
                )


def _disconnect() -> None:
    connection_created.disconnect(dispatch_uid="shadowguard")


def _remove_guard(connection: BaseDatabaseWrapper) -> None:
    if _guard in connection.execute_wrappers:
        connection.execute_wrappers.remove(_guard)


def install(**options: Any) -> None:
    """Refuse shadow writes on every Django connection outside a shadow transaction.

    It takes no options; idempotent.
    """
    _patches.install(_apply, options)


def _remove_idle_guards() -> None:
    from django.conf import settings

    if settings.configured:
        for connection in connections.all(initialized_only=True):
            if getattr(connection, _DEPTH_ATTR, None) is None:
                _remove_guard(connection)


def uninstall() -> None:
    """Undo :func:`install`; connections created meanwhile in this thread lose the guard too."""
    _patches.uninstall(after=_remove_idle_guards)
