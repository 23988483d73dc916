"""The databases a shadow test uses without naming them: found, and snapshotted before use.

The pytest plugin snapshots the databases of the ``shadowguard_engines`` fixture. While a
shadow test runs, :class:`Discovery` also finds

- SQLite files opened through ``sqlite3.connect`` (wrapped for the test only; the SQLite
  drivers of SQLAlchemy and Django call it too);
- SQLAlchemy engines that hand out a connection (the ``engine_connect`` event), and SQLite
  connections checked out of a pool (``engine.raw_connection()``), if SQLAlchemy is
  importable;
- Django's configured databases, if Django is imported and its settings are configured.

A database found before the body (in a fixture, or Django's) is snapshotted right before the
body; one first used in the body is snapshotted at that moment, before the connection reaches
the code under test, so even its first write is compared. The snapshots read through
SQLAlchemy: without it nothing found can be read, and the plugin says so.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import count
from typing import Any
from urllib.parse import parse_qs, unquote

from shadowguard import detached
from shadowguard.contract import Patches
from shadowguard.testing import DatabaseSnapshot, EngineLike, snapshot

__all__ = ["Discovery"]

_counter = count(1)
Key = tuple[str, ...]


def _sqlite_path(database: Any, uri: bool = False) -> str | None:
    """The absolute file of a ``sqlite3.connect`` target, or None for a memory database."""
    try:
        name = os.fsdecode(database)
    except TypeError:
        return None
    if uri or name.startswith("file:"):
        if not name.startswith("file:"):
            return None
        path, _, query = name[5:].partition("?")
        if parse_qs(query).get("mode") == ["memory"]:
            return None
        name = unquote(path.removeprefix("//localhost").removeprefix("//"))
    if name in ("", ":memory:"):
        return None
    return os.path.abspath(name)


def _url_key(url: Any) -> Key | None:
    """What identifies one database behind a SQLAlchemy URL (None: in memory)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = _sqlite_path(url.database or "", uri=bool(url.query.get("uri")))
        return ("sqlite", path) if path else None
    return (backend, str(url.host or ""), str(url.port or ""), str(url.database or ""))


def _engine_key(engine: EngineLike) -> Key | None:
    if isinstance(engine, str):
        import sqlalchemy as sa

        return _url_key(sa.make_url(engine))
    return _url_key(engine.url)


def _django_databases() -> Iterator[tuple[str, Any]]:
    """``(alias, what to snapshot)`` of Django's configured databases: a path or a URL."""
    conf = sys.modules.get("django.conf")
    if conf is None:
        return
    try:
        if not (conf.settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE")):
            return
        databases = dict(conf.settings.DATABASES)
    except Exception:  # ImproperlyConfigured, a settings module that does not import
        return
    import sqlalchemy as sa

    for alias, options in databases.items():
        engine, name = str(options.get("ENGINE", "")), options.get("NAME")
        if engine.endswith("sqlite3"):
            path = _sqlite_path(name or "")
            if path:
                yield alias, path
            continue
        if "postgres" in engine:
            driver = "postgresql+psycopg" if importlib.util.find_spec("psycopg") else "postgresql"
        elif "mysql" in engine:
            driver = "mysql+pymysql" if importlib.util.find_spec("pymysql") else "mysql"
        else:
            continue  # the dummy backend of a project without DATABASES, Oracle, ...
        port = options.get("PORT")
        yield (
            alias,
            sa.URL.create(
                driver,
                username=options.get("USER") or None,
                password=options.get("PASSWORD") or None,
                host=options.get("HOST") or None,
                port=int(port) if port else None,
                database=str(name) if name else None,
            ),
        )


@dataclass
class Found:
    """One database found, how to read it, and its state before the body."""

    key: Key
    label: str
    source: Any  # what snapshot() reads; for SQLite the file is the key's second part
    before: DatabaseSnapshot | None = None

    def take(self, ignore: Iterable[str]) -> DatabaseSnapshot:
        source = self.source
        if self.key[0] == "sqlite":
            if not os.path.exists(self.key[1]):  # reading would create the file
                return DatabaseSnapshot(self.label, {})
            source = f"sqlite:///{self.key[1]}"
        return snapshot(source, ignore_tables=ignore).databases[0]


@dataclass(eq=False)
class Discovery:
    """Finds the databases one shadow test uses; :meth:`differences` compares them."""

    ignore_tables: tuple[str, ...] = ()
    #: Called around each snapshot taken in the body (the plugin lifts its network block
    #: for the reading thread).
    pause: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    found: list[Found] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    _keys: set[Key] = field(default_factory=set)
    _in_body: bool = False
    _stopped: bool = False
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _local: threading.local = field(default_factory=threading.local)
    _patches: Patches = field(
        default_factory=lambda: Patches(f"shadowguard.pytest#{next(_counter)}")
    )

    @property
    def checked(self) -> int:
        """How many found databases were read before the body (and so are compared)."""
        return sum(1 for f in self.found if f.before is not None)

    def start(self) -> None:
        """Start watching ``sqlite3.connect`` and SQLAlchemy engines (until :meth:`stop`)."""
        original = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> Any:
            caller = str(sys._getframe(1).f_globals.get("__name__", ""))
            # coverage.py keeps its data in SQLite: its writes are the test run's, not the app's.
            if not getattr(self._local, "busy", False) and not caller.startswith("coverage."):
                database = args[0] if args else kwargs.get("database", "")
                path = _sqlite_path(database, bool(kwargs.get("uri", False)))
                if path:
                    self._see(("sqlite", path), f"sqlite file {path}", path)
            return original(*args, **kwargs)

        self._patches.setattr(sqlite3, "connect", connect)
        self._patches.setattr(sqlite3.dbapi2, "connect", connect)
        if importlib.util.find_spec("sqlalchemy") is None:
            return
        from sqlalchemy import Engine, event
        from sqlalchemy.pool import Pool

        def engine_connect(conn: Any) -> None:
            if not getattr(self._local, "busy", False):
                self._see_engine(conn.engine)

        # engine.raw_connection() fires no event that names the engine, only the pool's
        # checkout: a SQLite connection names its file itself. (Patching raw_connection
        # instead would sit above the SQLAlchemy guard's own wrapper and change what it sees.)
        def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            if getattr(self._local, "busy", False):
                return
            if isinstance(dbapi_connection, sqlite3.Connection):
                rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
                path = next((str(r[2]) for r in rows if r[1] == "main" and r[2]), None)
                if path:
                    path = os.path.abspath(path)
                    self._see(("sqlite", path), f"sqlite file {path}", path)

        for target, name, listener in (
            (Engine, "engine_connect", engine_connect),
            (Pool, "checkout", checkout),
        ):
            event.listen(target, name, listener)
            self._patches.add(name, functools.partial(event.remove, target, name, listener))

    def _see_engine(self, engine: Any) -> None:
        key = _url_key(engine.url)
        if key is None:
            return
        source: Any = engine.url.render_as_string(hide_password=False)
        if key[0] != "sqlite" and engine.dialect.is_async:
            from sqlalchemy.ext.asyncio import AsyncEngine

            source = AsyncEngine(engine)  # read through its synchronous twin
        self._see(key, engine.url.render_as_string(hide_password=True), source)

    def stop(self) -> None:
        self._stopped = True
        self._patches.restore()

    def before_body(self, named: Iterable[EngineLike]) -> None:
        """Leave out the ``named`` databases, add Django's, and snapshot all found so far."""
        named_keys = {k for k in map(_engine_key, named) if k is not None}
        with self._lock:
            self._keys |= named_keys
            self.found = [f for f in self.found if f.key not in named_keys]
            if importlib.util.find_spec("sqlalchemy") is not None:
                for alias, source in _django_databases():
                    key = ("sqlite", source) if isinstance(source, str) else _url_key(source)
                    if key is not None and key not in self._keys:
                        self._keys.add(key)
                        label = source
                        if not isinstance(source, str):
                            label = source.render_as_string()
                            source = source.render_as_string(hide_password=False)
                        self.found.append(
                            Found(key, f"django database {alias!r} ({label})", source)
                        )
            for found in self.found:
                self._read(found)
            self._in_body = True

    def _see(self, key: Key, label: str, source: Any) -> None:
        with self._lock:
            # A wrapper restored out of order (tests overlapping in threads) stays inert.
            if self._stopped or key in self._keys:
                return
            self._keys.add(key)
            found = Found(key, label, source)
            self.found.append(found)
            if self._in_body:
                with self.pause():
                    self._read(found)

    def _read(self, found: Found) -> None:
        self._local.busy = True
        try:
            with detached():
                found.before = found.take(self.ignore_tables)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.unreadable.append(f"{found.label}: {type(exc).__name__}: {first}"[:300])
        finally:
            self._local.busy = False

    def differences(self) -> list[str]:
        """What changed in each database read before the body, as the plugin reports it."""
        lines = []
        for found in self.found:
            if found.before is None:
                continue
            self._local.busy = True
            try:
                after = found.take(self.ignore_tables)
            finally:
                self._local.busy = False
            changed = found.before.differences(after)
            if changed:
                lines.append(f"database {found.label} (found, not named):")
                lines.extend(f"  {line}" for line in changed)
        return lines
