"""The driver's own connection under a shadow transaction: what goes below Django.

``connection.connection`` is the driver's connection (psycopg 3, sqlite3, PyMySQL,
mysqlclient). Its ``commit()``, an autocommit switch or a statement run through its own
cursor would end the shadow transaction, where no execute wrapper sees it. While
:class:`~._transactions.ShadowTransactions` holds a Django connection (:func:`hold` to
:func:`release`), its driver connection:

- refuses ``commit()``, ``rollback()``, ``begin()``, the two-phase calls, switching
  autocommit on (``autocommit = True``, ``autocommit(True)``, ``set_autocommit(True)``,
  sqlite3's ``isolation_level = None``), ``with connection:`` (which commits) and a
  ``ping`` that may reconnect (a new session would autocommit);
- judges each statement of its cursors (``execute``, ``executemany``, ``copy``,
  ``stream``; PyMySQL's ``query``) as the execute wrapper does, and refuses ``callproc``
  (a procedure may commit) and sqlite3's ``executescript`` (it commits first);
- opens the database transaction before psycopg's ``transaction()`` on an idle
  connection, which would otherwise BEGIN and COMMIT on its own.

Where the driver's class allows it (psycopg, PyMySQL, mysqlclient) the same object gets a
guarded subclass for the hold, so ``isinstance`` still holds and a pool gets the object
back as it was. sqlite3's types are C types: Django's attribute points to a proxy for the
hold, whose cursors are made with a guarded ``factory=``. Cursors made during the hold
keep their guarded class; it refuses nothing once the hold ends. Lower seams stay open:
psycopg's ``pgconn``, PyMySQL's ``_execute_command``.
"""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from shadowguard.contract import PROCESS, ShadowSideEffectBlocked, mark_wrapped, scope_now
from shadowguard.integrations.django._execute import judge, judged_above, refusal, run_judged

__all__ = ["Hold", "forget", "hold", "release"]

_REMEDY = (
    "The shadow transaction belongs to shadowguard: end work through Django "
    "(transaction.atomic), and run statements one at a time through a cursor"
)
#: Driver calls that end (or, on MySQL, first commit) the open transaction.
_ENDING = ("commit", "rollback", "begin", "tpc_begin", "tpc_prepare", "tpc_commit", "tpc_rollback")
#: Driver calls that switch autocommit on when given a true value.
_SWITCHING = ("set_autocommit",)
#: Cursor calls whose statement is judged; cursor calls refused outright.
_JUDGED = ("execute", "executemany", "copy", "stream")
_REFUSED = ("callproc", "executescript")


class Hold:
    """A Django connection whose driver connection is guarded, and how to undo it."""

    __slots__ = ("django", "proxy", "raw", "swapped")

    def __init__(self, django: BaseDatabaseWrapper, raw: Any) -> None:
        self.django = django
        self.raw = raw
        self.swapped: type | None = None
        self.proxy: RawProxy | None = None

    def refuse(self, call: str, operation: str) -> ShadowSideEffectBlocked:
        what = f"{call} on the driver's own connection in a shadow transaction"
        return refusal(self.django, None, what, remedy=_REMEDY, operation=operation)

    def run(self, method: Callable[..., Any], obj: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
        """Judge ``sql`` (unless the execute wrapper above just did), then run it."""
        if judged_above(self.django):
            return method(obj, sql, *args, **kwargs)
        judge(self.django, sql)
        return run_judged(self.django, method, obj, sql, *args, **kwargs)


_HOLDS: dict[int, Hold] = {}


def hold(connection: BaseDatabaseWrapper) -> Hold | None:
    """Guard the driver connection of ``connection`` until :func:`release`."""
    raw = connection.connection
    if raw is None or id(raw) in _HOLDS:
        return None
    held = _HOLDS[id(raw)] = Hold(connection, raw)
    cls = type(raw)
    try:
        raw.__class__ = _guarded_connection_class(cls)
        held.swapped = cls
    except TypeError:  # a C type (sqlite3): Django gets a proxy for the hold
        held.proxy = connection.connection = RawProxy(raw)
    return held


def release(held: Hold) -> None:
    """Undo :func:`hold`: the driver connection is the driver's own again."""
    # Forgotten first: whatever happens next, the guarded methods refuse nothing more.
    forget(held)
    if held.swapped is not None:
        held.raw.__class__ = held.swapped
    if held.proxy is not None and held.django.connection is held.proxy:
        held.django.connection = held.raw


def forget(held: Hold) -> None:
    """Make ``held`` refuse nothing more, even if :func:`release` could not finish."""
    if _HOLDS.get(id(held.raw)) is held:
        del _HOLDS[id(held.raw)]


def _held(raw: Any) -> Hold | None:
    """The hold on driver connection ``raw`` when shadow code calls; None for primary code,
    which keeps every driver call as written (as the execute wrapper lets it)."""
    if scope_now() is None and not PROCESS.shadow:
        return None
    return _HOLDS.get(id(raw))


def _hold_of_cursor(cursor: Any) -> Hold | None:
    return _held(getattr(cursor, "connection", None))


_CONNECTION_CLASSES: dict[type, type] = {}
_CURSOR_CLASSES: dict[type, type] = {}


def _guarded_connection_class(cls: Any) -> type:
    guarded = _CONNECTION_CLASSES.get(cls)
    if guarded is None:
        guarded = _CONNECTION_CLASSES[cls] = _subclass(cls, _connection_methods(cls))
    return guarded


def _connection_methods(cls: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    for name, method in _methods(cls, _ENDING):
        namespace[name] = _refusing(method, name)
    for name, method in _methods(cls, _SWITCHING):
        namespace[name] = _refusing_true(method, name)
    autocommit = inspect.getattr_static(cls, "autocommit", None)
    if hasattr(autocommit, "__set__"):  # psycopg: a property
        namespace["autocommit"] = _autocommit_property(autocommit)
    elif callable(autocommit):  # PyMySQL, mysqlclient: autocommit(on)
        namespace["autocommit"] = _refusing_true(cls.autocommit, "autocommit")
    if callable(getattr(cls, "ping", None)):
        namespace["ping"] = _ping(cls.ping)
    if callable(getattr(cls, "query", None)):
        namespace["query"] = _judging(cls.query, _held)
    if callable(getattr(cls, "transaction", None)):
        namespace["transaction"] = _transaction(cls.transaction, cls)
    namespace["cursor"] = _cursor(cls.cursor)
    return namespace


def _guarded_cursor_class(cls: type) -> type:
    guarded = _CURSOR_CLASSES.get(cls)
    if guarded is None:
        namespace: dict[str, Any] = {}
        for name, method in _methods(cls, _JUDGED):
            namespace[name] = _judging(method, _hold_of_cursor)
        for name, method in _methods(cls, _REFUSED):
            namespace[name] = _refusing(method, name, _hold_of_cursor)
        guarded = _CURSOR_CLASSES[cls] = _subclass(cls, namespace)
    return guarded


def _methods(cls: type, names: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """The methods of ``cls`` among ``names`` (a driver may lack some)."""
    for name in names:
        method = getattr(cls, name, None)
        if callable(method):
            yield name, method


def _subclass(cls: type, namespace: dict[str, Any]) -> type:
    """``cls`` with the guarded methods of ``namespace``, marked as the wrapper of ``cls``."""
    guarded = type(cls.__name__, (cls,), {"__slots__": (), **namespace})
    guarded.__qualname__ = f"ShadowGuarded{cls.__qualname__}"
    return mark_wrapped(guarded, cls)


def _guard_cursor(cursor: Any, held: Hold) -> Any:
    try:
        cursor.__class__ = _guarded_cursor_class(type(cursor))
    except TypeError:
        # A cursor type we cannot guard: its statements would go unjudged.
        cursor.close()
        raise held.refuse(f"a {type(cursor).__name__} cursor", "cursor") from None
    return cursor


def _refusing(original: Any, name: str, hold_of: Callable[[Any], Hold | None] = _held) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        held = hold_of(self)
        if held is None:
            return original(self, *args, **kwargs)
        raise held.refuse(f"{name}()", name)

    method.__name__ = name
    return mark_wrapped(method, original)


def _refusing_true(original: Any, name: str) -> Any:
    def method(self: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        held = _held(self)
        if held is not None and value:
            raise held.refuse(f"{name}({value!r})", "autocommit")
        return original(self, value, *args, **kwargs)

    method.__name__ = name
    return mark_wrapped(method, original)


def _autocommit_property(original: Any) -> property:
    def fset(self: Any, value: Any) -> None:
        held = _held(self)
        if held is not None and value:
            raise held.refuse(f"autocommit = {value!r}", "autocommit")
        original.__set__(self, value)

    return property(lambda self: original.__get__(self, type(self)), fset)


def _ping(original: Any) -> Any:
    def ping(self: Any, *args: Any, **kwargs: Any) -> Any:
        held = _held(self)
        if held is not None and (any(args) or kwargs.get("reconnect")):
            raise held.refuse("ping(reconnect=True)", "ping")
        return original(self, *args, **kwargs)

    return mark_wrapped(ping, original)


def _judging(original: Any, hold_of: Callable[[Any], Hold | None]) -> Any:
    def method(self: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
        held = hold_of(self)
        if held is None:
            return original(self, sql, *args, **kwargs)
        return held.run(original, self, sql, *args, **kwargs)

    method.__name__ = original.__name__
    return mark_wrapped(method, original)


def _transaction(original: Any, cls: Any) -> Any:
    def transaction(self: Any, *args: Any, **kwargs: Any) -> Any:
        held = _held(self)
        status = getattr(getattr(self, "info", None), "transaction_status", None)
        if held is not None and getattr(status, "name", "") == "IDLE":
            # psycopg makes a block on an idle connection the outer transaction, which
            # COMMITs at its end. A first statement opens the shadow transaction instead.
            cls.cursor(self).execute("SELECT 1").close()
        return original(self, *args, **kwargs)

    return mark_wrapped(transaction, original)


def _cursor(original: Any) -> Any:
    def cursor(self: Any, *args: Any, **kwargs: Any) -> Any:
        made = original(self, *args, **kwargs)
        # Guarded whoever asks: the cursor may be used by shadow code later.
        held = _HOLDS.get(id(self))
        return made if held is None else _guard_cursor(made, held)

    return mark_wrapped(cursor, original)


class RawProxy:
    """The driver connection, for a driver whose class cannot be swapped (sqlite3).

    Reads and writes every other attribute on the driver's object.
    """

    __slots__ = ("_shadowguard_raw",)

    def __init__(self, raw: Any) -> None:
        object.__setattr__(self, "_shadowguard_raw", raw)

    def __getattr__(self, name: str) -> Any:
        raw = self._shadowguard_raw
        held = _held(raw)
        if held is not None and name in (*_ENDING, *_REFUSED, "backup", "deserialize"):
            # backup() and deserialize() copy the shadow's work out, or replace it.
            return _refused_call(held, name)
        return getattr(raw, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raw = self._shadowguard_raw
        held = _held(raw)
        # sqlite3 commits when isolation_level becomes None or autocommit changes.
        if held is not None and (
            name == "autocommit" or (name == "isolation_level" and value is None)
        ):
            raise held.refuse(f"{name} = {value!r}", "autocommit")
        setattr(raw, name, value)

    def __enter__(self) -> RawProxy:
        self._shadowguard_raw.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        raw = self._shadowguard_raw
        held = _held(raw)
        if held is not None:  # sqlite3 commits (or rolls back) when the block ends
            raise held.refuse("with connection:", "commit")
        return raw.__exit__(*exc_info)

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        raw = self._shadowguard_raw
        held = _HOLDS.get(id(raw))
        if held is None:
            return raw.cursor(*args, **kwargs)
        factory = kwargs.pop("factory", args[0] if args else sqlite3.Cursor)
        return raw.cursor(_guarded_cursor_class(factory))

    def execute(self, sql: Any, *args: Any) -> Any:
        return self.cursor().execute(sql, *args)

    def executemany(self, sql: Any, *args: Any) -> Any:
        return self.cursor().executemany(sql, *args)


def _refused_call(held: Hold, name: str) -> Callable[..., Any]:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise held.refuse(f"{name}()", name)

    return refused
