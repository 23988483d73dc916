"""The execute wrapper: every statement Django runs is judged before it reaches the database.

``guard_execute`` sits first in each connection's ``execute_wrappers``. In shadow it
refuses writes on a connection outside a shadow transaction and, everywhere, what no
rollback undoes: raw transaction control, several statements in one call, what the core
classifier (``shadowguard._statements``) refuses (DDL; on MySQL and MariaDB every
statement that commits the open transaction first), and SQL it cannot read as text.
:func:`judge` is the same judgement for statements that reach the driver below Django
(``shadowguard.integrations.django._raw``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from shadowguard import _sql
from shadowguard._statements import AUTOCOMMIT_OK, REFUSE, classify
from shadowguard.contract import (
    PROCESS,
    Kind,
    ShadowSideEffectBlocked,
    missing_extra_error,
    record,
    refuse,
    scope_now,
)
from shadowguard.integrations.django._registry import PATCHES

try:
    from django.db.backends.base.base import BaseDatabaseWrapper
except ImportError as exc:  # pragma: no cover - exercised without Django installed
    raise missing_extra_error("django", "django") from exc

__all__ = [
    "DEPTH_ATTR",
    "SAVEPOINTS_ATTR",
    "add_guard",
    "guard_execute",
    "is_write",
    "judge",
    "judged_above",
    "refusal",
    "remove_guard",
    "run_judged",
    "sql_text",
]

#: The ``len(atomic_blocks)`` of the shadow transaction on a connection, while one is open.
DEPTH_ATTR = "_shadowguard_transaction_depth"
#: The savepoint ids around (and of) the shadow transaction, which shadow code may not end.
SAVEPOINTS_ATTR = "_shadowguard_savepoints"
# How many judged statements are on their way down to the driver right now.
_JUDGED_ATTR = "_shadowguard_judged_statements"
_ROLLED_BACK_ATTR = "_shadowguard_rolled_back_savepoint"

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


def sql_text(sql: object, context: Any = None) -> str | None:
    """The SQL as the driver sends it, or None when it cannot be read as text.

    bytes are read as Latin-1 (every ASCII keyword and quote stays what it is); a psycopg
    ``sql.Composable`` is rendered with ``context`` (the driver connection).
    """
    if isinstance(sql, str):
        return sql
    if isinstance(sql, (bytes, bytearray, memoryview)):
        return bytes(sql).decode("latin-1")
    as_string = getattr(sql, "as_string", None)
    if type(sql).__module__.startswith("psycopg") and callable(as_string):
        try:
            text = as_string(context)
        except Exception:
            return None
        return text if isinstance(text, str) else None
    return None


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
    text = sql_text(sql)
    if text is None:
        return True
    dialect = _DIALECTS.get(vendor, "")
    return _writes(classify(text, dialect)[0], _readings(text, dialect))


def guard_execute(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """The execute wrapper: judge the statement in shadow, then run it."""
    if scope_now() is None and not PROCESS.shadow:
        return execute(sql, params, many, context)
    connection: BaseDatabaseWrapper = context["connection"]
    if getattr(connection, DEPTH_ATTR, None) is None and not PATCHES.installed:
        return execute(sql, params, many, context)
    judge(connection, sql)
    return run_judged(connection, execute, sql, params, many, context)


def run_judged(
    connection: BaseDatabaseWrapper, call: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """``call(...)`` for a statement just judged: the held driver below need not judge it
    again."""
    setattr(connection, _JUDGED_ATTR, getattr(connection, _JUDGED_ATTR, 0) + 1)
    try:
        return call(*args, **kwargs)
    finally:
        setattr(connection, _JUDGED_ATTR, getattr(connection, _JUDGED_ATTR, 1) - 1)


def judged_above(connection: BaseDatabaseWrapper) -> bool:
    """Is a statement that the execute wrapper judged on its way down right now?"""
    return bool(getattr(connection, _JUDGED_ATTR, 0))


def judge(connection: BaseDatabaseWrapper, sql: object) -> None:
    """Refuse (raise) what shadow code may not run on ``connection``; record what would
    have committed."""
    text = sql_text(sql, connection.connection)
    if text is None:
        raise refusal(
            connection,
            repr(sql),
            f"SQL given as {type(sql).__name__}, which shadowguard cannot read",
            remedy="Pass SQL as str (or bytes, or psycopg's sql objects) in shadow traffic",
        )
    dialect = _DIALECTS.get(connection.vendor, "")
    readings = _readings(text, dialect)
    most = max(len(statements) for statements, _ in readings)
    if most > 1:
        # A second statement could commit, or write outside the shadow transaction, unseen.
        raise refusal(
            connection,
            text,
            f"{most} SQL statements in one execute() call",
            remedy="Run one statement per execute() call in shadow traffic, so each is judged",
        )
    # Each reading the server may apply is judged; the first one's is what gets recorded.
    judged = [_judge(connection, text, statements, syntax) for statements, syntax in readings]
    kind, verb = classify(text, dialect)
    if kind == REFUSE:
        raise refusal(connection, text, f"{verb} in shadow traffic", remedy=_NOT_UNDONE_REMEDY)
    writes = _writes(kind, readings)
    depth = getattr(connection, DEPTH_ATTR, None)
    if depth is not None and connection.in_atomic_block:
        _in_shadow_transaction(connection, depth, text, judged, writes)
    elif writes:
        keyword = judged[0][0]
        raise refusal(
            connection, text, f"a database write ({keyword or '?'}) outside a shadow transaction"
        )


def _judge(
    connection: BaseDatabaseWrapper, text: str, statements: list[str], syntax: _sql.Syntax
) -> tuple[str, str | None]:
    """``(keyword, savepoint name)`` of a single (or no) statement; refuses one that ends
    the transaction."""
    statement = statements[0] if statements else ""
    words = _sql.keywords(statement, syntax=syntax)
    if _ends_transaction(words):
        raise refusal(
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
            and (name is None or name in getattr(connection, SAVEPOINTS_ATTR, ()))
        ):
            # Releasing the savepoint that is the shadow transaction (or one around
            # it) would hand its writes to a transaction that may commit.
            raise refusal(
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


def refusal(
    connection: BaseDatabaseWrapper,
    text: str | None,
    what: str,
    remedy: str = _REMEDY,
    operation: str = "execute",
) -> ShadowSideEffectBlocked:
    """The recorded refusal of ``what`` (a statement ``text``, or a driver call) in shadow."""
    detail: dict[str, Any] = {"database": connection.alias, "vendor": connection.vendor}
    if text is not None:
        detail["statements"] = (text,)
    return refuse(
        Kind.DB_COMMIT,
        connection.alias,
        operation,
        f"{what} on Django database {connection.alias!r}",
        remedy=remedy,
        detail=detail,
    )


def add_guard(connection: BaseDatabaseWrapper) -> bool:
    """Put the wrapper first in ``connection.execute_wrappers``; False if it was there."""
    if guard_execute in connection.execute_wrappers:
        return False
    # First in the list is outermost: it sees each statement before any other wrapper.
    connection.execute_wrappers.insert(0, guard_execute)
    return True


def remove_guard(connection: BaseDatabaseWrapper) -> None:
    if guard_execute in connection.execute_wrappers:
        connection.execute_wrappers.remove(guard_execute)
