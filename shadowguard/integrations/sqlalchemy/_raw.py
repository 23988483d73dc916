"""Raw DBAPI connections from the pool: ``commit()`` refused in shadow, undone at the scope's end.

``engine.raw_connection()`` and ``Connection.connection`` hand out the pool's proxy of the
driver's connection. SQLAlchemy never calls the proxy's ``commit()`` in shadow (the
dialect's ``do_commit`` rolls back instead), so a shadow ``commit()`` on it is the
application's: refused, it would persist whatever the raw cursors wrote. A raw connection
checked out in shadow is treated like a shadow connection: rolled back, and its
PostgreSQL session state restored, when it returns to the pool or when the scope ends,
whichever comes first.

Not guarded (see the docs): the driver's own connection behind the proxy
(``.dbapi_connection``, ``.driver_connection``) and statements on raw cursors.
"""

from __future__ import annotations

import functools
import sys
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.pool import base as pool_base

from shadowguard.contract import PROCESS, Kind, mark_wrapped, refuse, scope_now
from shadowguard.integrations.sqlalchemy import _pg_state as pg_state
from shadowguard.integrations.sqlalchemy._connection import close_socket_now, in_greenlet
from shadowguard.integrations.sqlalchemy._pool import (
    PG_SNAPSHOT,
    TARGET,
    USED_IN_SHADOW,
    clear_notes,
)
from shadowguard.integrations.sqlalchemy._registry import PATCHES
from shadowguard.integrations.sqlalchemy._scope_end import CONNECTIONS, at_scope_end

__all__ = ["guard_raw_connections"]


def guard_raw_connections() -> None:
    """Refuse the pool proxy's ``commit()`` in shadow; track raw checkouts in shadow."""
    PATCHES.setattr(pool_base._ConnectionFairy, "commit", _commit)
    PATCHES.setattr(Engine, "raw_connection", _make_raw_connection(Engine.raw_connection))


def _commit(self: Any) -> None:
    # Without this method the proxy's __getattr__ hands out the driver's commit().
    if scope_now() is None and not PROCESS.shadow:
        return self.dbapi_connection.commit()  # type: ignore[no-any-return]
    where = _target(self)
    raise refuse(
        Kind.DB_COMMIT,
        where,
        "commit",
        f"commit() on a raw DBAPI connection to {where} in shadow "
        "(engine.raw_connection(), Connection.connection): it would persist",
        remedy="Commit through SQLAlchemy (Connection.commit(), Session.commit()), "
        "which shadowguard turns into a validated rollback, or keep raw connections "
        "out of shadow traffic",
    )


def _make_raw_connection(original: Callable[[Engine], Any]) -> Callable[[Engine], Any]:
    def raw_connection(self: Engine) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self)
        fairy = original(self)
        # SQLAlchemy's own Connection checks out through here too: its statements are
        # noted at the dialect seam. Only the application's raw connections are noted here.
        if sys._getframe(1).f_globals.get("__name__") != "sqlalchemy.engine.base":
            try:
                _note(self, fairy)
            except BaseException:
                fairy.invalidate()
                raise
        return fairy

    return mark_wrapped(raw_connection, original)


def _note(engine: Engine, fairy: Any) -> None:
    info = fairy.info
    if not info.get(USED_IN_SHADOW):
        if engine.dialect.name == "postgresql":
            info[PG_SNAPSHOT] = pg_state.snapshot(fairy.dbapi_connection)
            fairy.dbapi_connection.rollback()  # the snapshot's own transaction
        info[USED_IN_SHADOW] = True
        info[TARGET] = engine.url.render_as_string(hide_password=True)
    scope = scope_now()
    if scope is not None:
        at_scope_end(scope.root, CONNECTIONS, functools.partial(_end_of_scope, weakref.ref(fairy)))


def _end_of_scope(ref: weakref.ref[Any]) -> None:
    """A raw connection from the scope still checked out: roll it back, restore its state."""
    fairy = ref()
    if fairy is None or fairy._counter <= 0 or fairy.dbapi_connection is None:
        return  # returned to the pool, and cleaned there
    info = fairy.info
    try:
        if getattr(fairy._pool._dialect, "is_async", False) and not in_greenlet():
            close_socket_now(fairy.driver_connection)  # no IO possible here
            fairy.invalidate()
            return
        fairy.dbapi_connection.rollback()
        snapshot = info.get(PG_SNAPSHOT)
        if snapshot is not None:
            pg_state.restore(fairy.dbapi_connection, snapshot, in_transaction=False)
    except Exception:
        fairy.invalidate()
        raise
    clear_notes(info)


def _target(fairy: Any) -> str:
    target = fairy.info.get(TARGET) if fairy.is_valid else None
    if target:
        return str(target)
    dialect = fairy._pool._dialect
    name = getattr(dialect, "name", None)
    return f"{name}+{dialect.driver}" if name else "a pooled DBAPI connection"
