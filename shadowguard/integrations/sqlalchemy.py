"""SQLAlchemy guard: in shadow, every statement runs and is validated, nothing is committed.

Seams, from the lowest up:

- the dialect's ``do_commit`` (every root commit of every dialect, and a pool's
  commit-on-return): in shadow it validates (on PostgreSQL ``SET CONSTRAINTS ALL
  IMMEDIATE``) and rolls back instead, recording a ``db.commit`` suppression.
- the dialect's ``do_execute``/``do_executemany``/``do_execute_no_params``: refuse, before
  execution, DDL, transaction control in SQL text, two-phase statements, functions no
  rollback undoes, MySQL's implicit commits and any write on an autocommit connection
  (every statement of a SQL string is classified by an allowlist). A scope whose first
  statement on a connection finds a primary transaction open sets a savepoint, and its end
  rolls back to it only. Dialect classes that override one of these are wrapped too,
  before their first connection.
- two-phase methods of :class:`~sqlalchemy.engine.Connection`: refused in shadow.
- ``SessionTransaction._connection_for_bind`` (and ``commit``, ``Session._close_impl``):
  in shadow a Session keeps one connection
  per engine with an open transaction, and each Session transaction is a savepoint in it,
  so reads after ``commit()`` see the earlier writes; rolled back when the scope ends or
  the Session closes.
- the pool's reset of a returned connection (``_ConnectionFairy._reset``): a connection
  used in shadow is rolled back and, on PostgreSQL, its session state put back as it was at checkout.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import weakref
from collections.abc import Callable
from typing import Any

from shadowguard._context import record_suppression
from shadowguard._patching import Patches
from shadowguard._statements import AUTOCOMMIT_OK, REFUSE, TXN, UNKNOWN, WRITE, classify
from shadowguard.contract import PROCESS, scope_now
from shadowguard.errors import ShadowGuardError, ShadowSideEffectBlocked, missing_extra_error

try:
    from sqlalchemy import event
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.engine.default import DefaultDialect
    from sqlalchemy.orm import Session
    from sqlalchemy.orm.session import SessionTransaction
    from sqlalchemy.pool import base as _pool_base
    from sqlalchemy.util import concurrency as _concurrency
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise missing_extra_error("sqlalchemy", "sqlalchemy") from exc

__all__ = ["classify", "install", "uninstall"]

_patches = Patches("sqlalchemy")
_lock = threading.Lock()

# Keys in the pool connection record's ``info``; cleared when the connection returns.
_USED = "shadowguard.used"
_WRITES = "shadowguard.writes"
_TARGET = "shadowguard.target"
_SCOPE = "shadowguard.scope"
_MAX_STATEMENTS = 20

_SNAPSHOT = "shadowguard.snapshot"
_SAVEPOINT = "shadowguard.savepoint"
_SAVEPOINT_NAME = "shadowguard_scope"

# The session state of a PostgreSQL connection that outlives a rollback, in one round trip.
# Taken before shadow traffic first uses a checked-out connection and compared when it
# returns to the pool: the primary's own state (SETs made by a connect hook, its advisory
# locks, temporary tables) must come back exactly, and the shadow's must be gone.
_PG_STATE = """SELECT
 (SELECT coalesce(json_object_agg(name, setting), '{}') FROM pg_settings
   WHERE source = 'session')::text,
 (SELECT coalesce(json_agg(json_build_array(classid, objid, objsubid, mode)
   ORDER BY classid, objid, objsubid, mode), '[]')
   FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::text,
 (SELECT coalesce(json_agg(c ORDER BY c), '[]') FROM pg_listening_channels() c)::text,
 (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()),
 (SELECT count(*) FROM pg_cursors),
 (SELECT count(*) FROM pg_prepared_statements WHERE from_sql),
 session_user::text, current_user::text"""


def _pg_state(cursor: Any) -> tuple[Any, ...]:
    cursor.execute(_PG_STATE)
    row = cursor.fetchone()
    return (json.loads(row[0]), json.loads(row[1]), json.loads(row[2]), *row[3:])


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _pg_undo(cursor: Any, before: tuple[Any, ...], after: tuple[Any, ...]) -> None:
    settings, locks, channels, temp, cursors, prepared, session_user, role = before
    new_settings, new_locks, new_channels, new_temp, new_cursors, new_prepared, *users = after
    if users != [session_user, role]:
        # SET ROLE and SET SESSION AUTHORIZATION are not in pg_settings, and RESET ALL
        # leaves them: the next primary checkout would run as another role.
        if users[0] != session_user:
            cursor.execute(f"SET SESSION AUTHORIZATION {_quote(session_user)}")
        if role != session_user:
            cursor.execute(f"SET ROLE {_quote(role)}")
        else:
            cursor.execute("RESET ROLE")
    if new_settings != settings:
        cursor.execute("RESET ALL")
        for name, value in settings.items():
            cursor.execute(f"SELECT set_config({_literal(name)}, {_literal(value)}, false)")
    for classid, objid, objsubid, mode in new_locks:
        if [classid, objid, objsubid, mode] in locks:
            continue
        unlock = "pg_advisory_unlock_shared" if mode == "ShareLock" else "pg_advisory_unlock"
        key = (
            f"({int(classid)}::bigint << 32) | {int(objid)}::bigint"
            if objsubid == 1
            else f"{int(classid)}::int, {int(objid)}::int"
        )
        cursor.execute(f"SELECT {unlock}({key})")
    for channel in new_channels:
        if channel not in channels:
            cursor.execute(f"UNLISTEN {_quote(channel)}")
    # Only when the primary had none of its own, or they would go too.
    if new_temp != temp and temp == 0:
        cursor.execute("DISCARD TEMP")
    if new_cursors != cursors and cursors == 0:
        cursor.execute("CLOSE ALL")
    if new_prepared != prepared and prepared == 0:
        cursor.execute("DEALLOCATE ALL")


def _pg_restore(dbapi_connection: Any, before: tuple[Any, ...]) -> None:
    """Put a PostgreSQL session back in the state ``before``, or raise."""
    cursor = dbapi_connection.cursor()
    try:
        after = _pg_state(cursor)
        if after == before:
            dbapi_connection.rollback()
            return
        _pg_undo(cursor, before, after)
        dbapi_connection.commit()
        left = _pg_state(cursor)
        dbapi_connection.rollback()
    finally:
        cursor.close()
    if left != before:
        # The pool invalidates a connection whose reset fails: it is closed, not reused.
        raise ShadowGuardError(
            "shadowguard could not restore the session state of a PostgreSQL connection "
            "used by shadow traffic; the pool discards it"
        )


def _shadow_now() -> bool:
    return scope_now() is not None or PROCESS.shadow


def _target(conn: Connection) -> str:
    return conn.engine.url.render_as_string(hide_password=True)


def _driver_autocommit(conn: Connection) -> bool:
    dbapi = conn.connection.dbapi_connection
    if dbapi is None:
        return False
    try:
        return bool(conn.dialect.detect_autocommit_setting(dbapi))
    except (AttributeError, NotImplementedError):
        return getattr(dbapi, "autocommit", False) is True


def _is_autocommit(conn: Connection) -> bool:
    return conn._is_autocommit_isolation() or _driver_autocommit(conn)


_GUARDED = ("do_commit", "do_execute", "do_executemany", "do_execute_no_params")


def _cover(cls: type) -> None:
    """Wrap every guarded method that ``cls`` defines itself (idempotent)."""
    if not issubclass(cls, DefaultDialect) and cls is not _pool_base._ConnDialect:
        raise ShadowGuardError(
            f"shadowguard cannot guard the dialect {cls.__qualname__}: it does not derive "
            "from sqlalchemy's DefaultDialect. Keep engines using it out of shadow traffic"
        )
    with _lock:
        for name in _GUARDED:
            own = vars(cls).get(name)
            if own is not None and not getattr(own, "_shadowguard", False):
                _patches.setattr(cls, name, _WRAPPERS[name](own))


def _covered(dialect: Any) -> None:
    cls = type(dialect)
    if all(getattr(getattr(cls, n, None), "_shadowguard", False) for n in _GUARDED):
        return
    # a dialect class defined after install() that overrides a guarded method
    if not issubclass(cls, DefaultDialect):
        _cover(cls)  # raises: not a DefaultDialect
    for klass in cls.__mro__:
        if issubclass(klass, DefaultDialect):
            _cover(klass)


# -- statements ------------------------------------------------------------------------


def _make_do_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    def do_execute(
        self: Any, cursor: Any, statement: str, parameters: Any, context: Any = None
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, cursor, statement, parameters, context)
        _check_statement(self, cursor, statement, context)
        return original(self, cursor, statement, parameters, context)

    do_execute._shadowguard = True  # type: ignore[attr-defined]
    return do_execute


def _make_do_execute_no_params(original: Callable[..., Any]) -> Callable[..., Any]:
    def do_execute_no_params(self: Any, cursor: Any, statement: str, context: Any = None) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, cursor, statement, context)
        _check_statement(self, cursor, statement, context)
        return original(self, cursor, statement, context)

    do_execute_no_params._shadowguard = True  # type: ignore[attr-defined]
    return do_execute_no_params


def _check_statement(dialect: Any, cursor: Any, statement: str, context: Any) -> None:
    _covered(dialect)
    kind, verb = classify(statement, dialect.name)
    conn: Connection | None = getattr(context, "root_connection", None)
    if conn is None:
        # not a statement of a Connection (dialect internals): refuse only the worst
        if kind == REFUSE:
            raise ShadowSideEffectBlocked(f"{verb} (a rollback cannot undo it)")
        return
    if kind == REFUSE:
        raise ShadowSideEffectBlocked(
            f"{verb} on {_target(conn)} (a rollback cannot undo it)",
            remedy="Run schema changes, transaction control and non-transactional functions "
            "(setval, dblink, ...) outside shadow traffic",
        )
    autocommit = _is_autocommit(conn)
    if autocommit and kind not in AUTOCOMMIT_OK:
        raise ShadowSideEffectBlocked(
            f"{verb} on an AUTOCOMMIT connection to {_target(conn)} (it would persist at once)",
            remedy="Use a connection in a transaction (no isolation_level='AUTOCOMMIT') "
            "for writes that shadow traffic makes",
        )
    try:
        info = conn.connection.info
    except NotImplementedError:
        # the dialect's first-connect initialization: no pool record yet, nothing to track
        return
    scope = scope_now()
    root = scope.root if scope is not None else None
    # Before the snapshot below, which would start a transaction of its own.
    primary_transaction = (
        root is not None
        and info.get(_SCOPE) is not root
        and not autocommit
        and _server_transaction(conn)
    )
    if not info.get(_USED):
        if dialect.name == "postgresql":
            # a cursor of its own: the statement's may be a server-side (named) one
            state_cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                info[_SNAPSHOT] = _pg_state(state_cursor)
            finally:
                state_cursor.close()
        info[_USED] = True
        info[_TARGET] = _target(conn)
    if root is not None and info.get(_SCOPE) is not root:
        if primary_transaction:
            _open_savepoint(conn, info)
        info[_SCOPE] = root
        root.on_exit(functools.partial(_end_of_scope, weakref.ref(conn)))
    if kind in (WRITE, UNKNOWN) or verb == "SAVEPOINT":
        if dialect.name == "sqlite" and not autocommit:
            dbapi = conn.connection.dbapi_connection
            # pysqlite begins lazily, only before DML: a SAVEPOINT outside a transaction
            # starts one that its RELEASE would commit.
            if dbapi is not None and getattr(dbapi, "in_transaction", True) is False:
                cursor.execute("BEGIN")
        if kind != TXN:
            writes = info.setdefault(_WRITES, [])
            if len(writes) < _MAX_STATEMENTS:
                writes.append(" ".join(statement.split())[:200])


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


def _open_savepoint(conn: Connection, info: dict[str, Any]) -> None:
    """The primary has a transaction open on ``conn``: the scope rolls back to here only."""
    if conn.dialect.is_async:
        # the scope ends outside SQLAlchemy's greenlet, where no IO is possible
        raise ShadowSideEffectBlocked(
            f"shadow work on an asyncio connection to {_target(conn)} that is inside a "
            "transaction of the primary (its end could not roll back the shadow's part only)",
            remedy="Use a connection of its own for the shadow work, or commit or roll "
            "back the primary's transaction before the shadow scope starts",
        )
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"SAVEPOINT {_SAVEPOINT_NAME}")
    finally:
        cursor.close()
    info[_SAVEPOINT] = True


def _to_savepoint(dbapi_connection: Any, release: bool) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT_NAME}")
        if release:
            cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT_NAME}")
    finally:
        cursor.close()


def _end_of_scope(ref: weakref.ref[Connection]) -> None:
    """Roll back what a connection still holds when the shadow scope that used it ends."""
    conn = ref()
    if conn is None or conn in _held or conn.closed:
        return  # (a Session's held connection is released with its Session's state)
    if not conn.invalidated and conn.connection.info.pop(_SAVEPOINT, False):
        # The primary's transaction: undo the shadow's part only and leave it open.
        try:
            _to_savepoint(conn.connection, release=True)
            return
        except Exception:  # noqa: S110
            pass  # the shadow ended the transaction itself: nothing of it is left
    if not conn.in_transaction():
        return
    if conn.dialect.is_async and not _in_greenlet():
        conn.invalidate()  # no IO possible here: drop the connection, the server rolls back
    else:
        conn.rollback()


def _in_greenlet() -> bool:
    check: Callable[[], bool] | None = getattr(_concurrency, "in_greenlet", None)
    return bool(check and check())


# -- commit ----------------------------------------------------------------------------


def _tables(statements: list[str]) -> list[str]:
    found = set()
    for s in statements:
        m = re.search(r"\b(?:INTO|UPDATE|FROM)\s+([\w.\"]+)", s, re.I)
        if m:
            found.add(m.group(1).strip('"'))
    return sorted(found)


def _detail(info: dict[str, Any], how: str) -> dict[str, Any]:
    statements = list(info.pop(_WRITES, ()))
    return {"statements": statements, "tables": _tables(statements), "suppressed_by": how}


def _make_do_commit(original: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    def do_commit(self: Any, dbapi_connection: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, dbapi_connection)
        _shadow_commit(self, dbapi_connection)
        return None

    do_commit._shadowguard = True  # type: ignore[attr-defined]
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
        if getattr(dialect, "name", "") == "postgresql" and info.get(_WRITES):
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            finally:
                cursor.close()
    except Exception as exc:
        error = exc
    try:
        if info.get(_SAVEPOINT):
            # The transaction is the primary's: its writes stay pending (so does the
            # savepoint, for the rest of the scope); the rollback also undoes the SET.
            _to_savepoint(dbapi_connection, release=False)
        else:
            dialect.do_rollback(dbapi_connection)
    finally:
        name = getattr(dialect, "name", None)
        target = info.get(_TARGET) or (
            f"{name}+{dialect.driver}" if name else "a connection pool without an engine"
        )
        record_suppression("db.commit", target, _detail(info, "rollback"), error)
    if error is not None:
        raise error


def _refuse_twophase(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, *args, **kwargs)
        raise ShadowSideEffectBlocked(
            f"two-phase commit ({name}) on {_target(self)}: a prepared transaction "
            "outlives the connection and a rollback cannot undo it",
            remedy="Keep two-phase transactions (Session(twophase=True)) out of shadow traffic",
        )

    return guarded


# -- sessions: read your own writes ----------------------------------------------------


class _Pin:
    """A Session's connection to one engine, held open across its shadow transactions."""

    __slots__ = ("conn", "roots")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.roots: set[str] = set()


_pins: weakref.WeakKeyDictionary[Session, dict[Engine, _Pin]] = weakref.WeakKeyDictionary()
_held: weakref.WeakSet[Connection] = weakref.WeakSet()


def _pin_for(session: Session, engine: Engine) -> _Pin:
    with _lock:
        pins = _pins.setdefault(session, {})
        pin = pins.get(engine)
    if pin is not None and not pin.conn.closed and not pin.conn.invalidated:
        if not pin.conn.in_transaction():
            pin.conn.begin()
        return pin
    conn = engine.connect()
    try:
        conn.begin()
        pin = _Pin(conn)
        _held.add(conn)
        event.listen(conn, "release_savepoint", functools.partial(_on_release, pin))
    except BaseException:
        conn.close()
        raise
    with _lock:
        pins[engine] = pin
    scope = scope_now()
    if scope is not None:
        scope.root.on_exit(functools.partial(_release_pins, weakref.ref(session), engine))
    return pin


def _on_release(pin: _Pin, conn: Connection, name: str, context: Any) -> None:
    """The savepoint standing for a Session's commit: validate, then keep the rows."""
    if name not in pin.roots:
        return
    pin.roots.discard(name)
    info = conn.connection.info
    error: BaseException | None = None
    if conn.dialect.name == "postgresql" and info.get(_WRITES):
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
    record_suppression(
        "db.commit", info.get(_TARGET) or _target(conn), _detail(info, "savepoint"), error
    )
    if error is not None:
        error._shadowguard_recorded = True  # type: ignore[attr-defined]
        raise error


def _release_pins(session_ref: weakref.ref[Session], engine: Engine | None = None) -> None:
    session = session_ref()
    if session is None:
        return
    with _lock:
        pins = _pins.get(session)
        if not pins:
            return
        chosen = [pins.pop(engine)] if engine is not None and engine in pins else []
        if engine is None:
            chosen = list(pins.values())
            pins.clear()
    at_scope_end = engine is not None
    for pin in chosen:
        trans = session._transaction
        if at_scope_end and trans is not None and pin.conn in trans._connections:
            # The Session is still in a transaction on the held connection: end it first.
            if pin.conn.dialect.is_async and not _in_greenlet():
                session.invalidate()
            else:
                session.rollback()
        _release(pin.conn)
    if chosen and at_scope_end:
        # What the Session loaded from the shadow transaction no longer exists: make it
        # reload rather than serve ghost rows.
        session.expire_all()


def _release(conn: Connection) -> None:
    if conn.closed:
        return
    if conn.dialect.is_async and not _in_greenlet():
        conn.invalidate()
        return
    try:
        conn.rollback()
    finally:
        conn.close()


def _make_connection_for_bind(original: Callable[..., Connection]) -> Callable[..., Connection]:
    def _connection_for_bind(
        self: SessionTransaction, bind: Any, execution_options: Any
    ) -> Connection:
        if (
            (scope_now() is None and not PROCESS.shadow)
            or self._parent is not None
            or not isinstance(bind, Engine)
            or bind in self._connections
            or self.session.twophase
        ):
            return original(self, bind, execution_options)
        session = self.session
        pin = _pin_for(session, bind)
        mode = session.join_transaction_mode
        session.join_transaction_mode = "create_savepoint"
        try:
            conn = original(self, pin.conn, execution_options)
        finally:
            session.join_transaction_mode = mode
        savepoint = getattr(self._connections[conn][1], "_savepoint", None)
        if savepoint is not None:
            pin.roots.add(savepoint)
        conn.connection.info.pop(_WRITES, None)
        return conn

    return _connection_for_bind


def _make_session_commit(original: Callable[..., None]) -> Callable[..., None]:
    def commit(self: SessionTransaction, *args: Any, **kwargs: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, *args, **kwargs)
        try:
            return original(self, *args, **kwargs)
        except sa_exc.StatementError as exc:
            # A flush that fails inside commit(): the commit the primary would have tried.
            if not getattr(exc, "_shadowguard_recorded", False):
                conns = [c for c in self._connections.values() if isinstance(c, tuple)]
                target = _target(conns[0][0]) if conns else "session"
                statement = " ".join(str(exc.statement or "").split())[:200]
                detail = {"statements": [statement], "tables": _tables([statement])}
                record_suppression("db.commit", target, detail | {"suppressed_by": "error"}, exc)
            raise

    return commit


def _make_close_impl(original: Callable[..., None]) -> Callable[..., None]:
    def _close_impl(self: Session, *args: Any, **kwargs: Any) -> None:
        try:
            original(self, *args, **kwargs)
        finally:
            if _pins and self in _pins:
                _release_pins(weakref.ref(self))

    return _close_impl


# -- pool ------------------------------------------------------------------------------


def _make_fairy_reset(original: Callable[..., None]) -> Callable[..., None]:
    # A wrapper rather than the pool's "reset" event: an event listener makes SQLAlchemy
    # build and dispatch a reset state on every primary checkin (about 2 us).
    def _reset(
        self: Any,
        pool: Any,
        transaction_was_reset: bool = False,
        terminate_only: bool = False,
        asyncio_safe: bool = True,
    ) -> None:
        record = self._connection_record
        if record is not None and _USED in record.info:
            _on_return(self.dbapi_connection, record.info, terminate_only, asyncio_safe)
        original(
            self,
            pool,
            transaction_was_reset=transaction_was_reset,
            terminate_only=terminate_only,
            asyncio_safe=asyncio_safe,
        )

    return _reset


def _on_return(
    dbapi_connection: Any, info: dict[str, Any], terminate_only: bool, asyncio_safe: bool
) -> None:
    """A connection used in shadow goes back to the pool: leave nothing of the shadow on it."""
    snapshot = info.get(_SNAPSHOT)
    for key in (_USED, _WRITES, _TARGET, _SCOPE, _SNAPSHOT, _SAVEPOINT):
        info.pop(key, None)
    if terminate_only or not asyncio_safe or dbapi_connection is None:
        return  # the pool closes or discards this connection without using it again
    # An exception here makes the pool invalidate the connection: still no trace.
    dbapi_connection.rollback()
    if snapshot is not None:
        _pg_restore(dbapi_connection, snapshot)


# -- install ---------------------------------------------------------------------------


def install(**options: Any) -> None:
    """Guard every SQLAlchemy engine, connection and session, existing and future.

    Idempotent. Takes no options.
    """
    if options:
        raise TypeError(
            f"shadowguard.integrations.sqlalchemy.install() takes no options, got "
            f"{', '.join(sorted(options))}"
        )
    with _lock:
        if _patches:
            return
        try:
            _install()
        except BaseException:
            _patches.restore()
            raise


def _on_connect(dialect: Any, conn_rec: Any, cargs: Any, cparams: Any) -> None:
    # Each new DBAPI connection: a dialect class imported after install() is wrapped
    # before its first statement.
    _covered(dialect)


def _all_subclasses(cls: type) -> list[type]:
    found: list[type] = []
    todo = [cls]
    while todo:
        klass = todo.pop()
        found.append(klass)
        todo.extend(klass.__subclasses__())
    return found


def _install() -> None:
    for klass in (*_all_subclasses(DefaultDialect), _pool_base._ConnDialect):
        for name in _GUARDED:
            own = vars(klass).get(name)
            if own is not None and not getattr(own, "_shadowguard", False):
                _patches.setattr(klass, name, _WRAPPERS[name](own))
    for name in ("begin_twophase", "_prepare_twophase_impl", "_commit_twophase_impl"):
        _patches.setattr(Connection, name, _refuse_twophase(name, getattr(Connection, name)))
    _patches.setattr(
        Connection,
        "commit_prepared",
        _refuse_twophase("COMMIT PREPARED", Connection.commit_prepared),
    )
    _patches.setattr(
        SessionTransaction,
        "_connection_for_bind",
        _make_connection_for_bind(SessionTransaction._connection_for_bind),
    )
    _patches.setattr(SessionTransaction, "commit", _make_session_commit(SessionTransaction.commit))
    _patches.setattr(Session, "_close_impl", _make_close_impl(Session._close_impl))
    _patches.setattr(
        _pool_base._ConnectionFairy,
        "_reset",
        _make_fairy_reset(_pool_base._ConnectionFairy._reset),
    )
    event.listen(DefaultDialect, "do_connect", _on_connect)
    _patches.add(
        "event DefaultDialect.do_connect",
        functools.partial(event.remove, DefaultDialect, "do_connect", _on_connect),
    )


_WRAPPERS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "do_commit": _make_do_commit,
    "do_execute": _make_do_execute,
    "do_executemany": _make_do_execute,
    "do_execute_no_params": _make_do_execute_no_params,
}


def uninstall() -> None:
    """Remove every patch and listener :func:`install` made.

    Connections that Sessions still hold for shadow work are rolled back and released.
    """
    with _lock:
        sessions = list(_pins.keys())
    for session in sessions:
        _release_pins(weakref.ref(session))
    with _lock:
        _patches.restore()
