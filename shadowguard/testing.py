"""Prove in tests that shadow code persisted nothing, on the real peers.

``snapshot(*engines)`` records every table of every database (row count and a content
hash, read through a connection of its own); ``assert_nothing_persisted`` compares two
snapshots and, used as a context manager, also refuses new outbound connections for the
duration of the block. SQLAlchemy is imported only when an engine is given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shadowguard._netblock import NetworkBlock, ShadowConnectionBlocked, endpoint_of_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

    EngineLike = Engine | AsyncEngine | str
else:
    EngineLike = Any

__all__ = [
    "DatabaseSnapshot",
    "EngineLike",
    "NetworkBlock",
    "ShadowConnectionBlocked",
    "Snapshot",
    "TableState",
    "assert_nothing_persisted",
    "database_endpoints",
    "snapshot",
]

# Drivers whose sync twin reads the same database when an AsyncEngine is given.
_SYNC_DRIVER = {
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
    "sqlite+aiosqlite": "sqlite+pysqlite",
    "mysql+aiomysql": "mysql+pymysql",
    "mysql+asyncmy": "mysql+pymysql",
}
_PG_CHUNK = 200  # tables per statement: one round trip for a typical schema
# A transaction the code under test left open can hold a lock on a table; the snapshot
# then fails with a clear error instead of hanging the test run.
LOCK_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class TableState:
    """Row count and an order-independent content hash of one table."""

    rows: int
    digest: str


@dataclass(frozen=True)
class DatabaseSnapshot:
    """The tables of one database (``"schema.table"`` names) and its prepared transactions."""

    target: str
    tables: Mapping[str, TableState]
    prepared: frozenset[str] = frozenset()

    def differences(self, later: DatabaseSnapshot) -> list[str]:
        """What changed between this snapshot and ``later``, one line per table."""
        lines = []
        for name in sorted(set(self.tables) | set(later.tables)):
            before, after = self.tables.get(name), later.tables.get(name)
            if before == after:
                continue
            if before is None:
                assert after is not None
                lines.append(f"table {name}: created ({_rows(after.rows)})")
            elif after is None:
                lines.append(f"table {name}: dropped (had {_rows(before.rows)})")
            elif before.rows != after.rows:
                delta = after.rows - before.rows
                lines.append(
                    f"table {name}: {_rows(before.rows)} before, {after.rows} after "
                    f"({delta:+d} row{'s' if abs(delta) != 1 else ''})"
                )
            else:
                lines.append(
                    f"table {name}: row contents changed ({_rows(after.rows)} before and after)"
                )
        for gid in sorted(later.prepared - self.prepared):
            lines.append(
                f"prepared transaction {gid!r} left behind "
                "(it can still be committed: COMMIT PREPARED or ROLLBACK PREPARED it)"
            )
        return lines


@dataclass(frozen=True)
class Snapshot:
    """Snapshots of several databases, taken together."""

    databases: tuple[DatabaseSnapshot, ...] = ()
    ignore_tables: frozenset[str] = field(default_factory=frozenset)
    engines: tuple[EngineLike, ...] = field(default=(), repr=False, compare=False)

    def again(self) -> Snapshot:
        """A new snapshot of the same engines, leaving out the same tables."""
        return snapshot(*self.engines, ignore_tables=self.ignore_tables)

    def differences(self, later: Snapshot) -> list[str]:
        """Per database, what changed (empty when nothing was persisted)."""
        lines = []
        later_by_target = {db.target: db for db in later.databases}
        for db in self.databases:
            other = later_by_target.get(db.target)
            if other is None:
                continue
            changed = db.differences(other)
            if changed:
                lines.append(f"database {db.target}:")
                lines.extend(f"  {line}" for line in changed)
        return lines


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def _ignored(name: str, ignore: frozenset[str]) -> bool:
    return name in ignore or name.rpartition(".")[2] in ignore


def _target(engine: Any) -> str:
    return str(engine.url.render_as_string(hide_password=True))


@contextlib.contextmanager
def _reader(engine: EngineLike) -> Iterator[tuple[str, Connection]]:
    """A connection of its own to ``engine``'s database (never one the code under test holds)."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    if isinstance(engine, str):
        owned = sa.create_engine(engine, poolclass=NullPool)
    elif isinstance(engine, sa.Engine):
        owned = None
    elif hasattr(engine, "sync_engine"):
        url = engine.url
        driver = _SYNC_DRIVER.get(url.drivername, url.drivername)
        if driver.startswith("sqlite") and url.database in (None, "", ":memory:"):
            raise ValueError(
                "shadowguard cannot snapshot an in-memory SQLite AsyncEngine from a second "
                "connection; use a file database"
            )
        owned = sa.create_engine(url.set(drivername=driver), poolclass=NullPool)
    else:
        raise TypeError(f"shadowguard needs an Engine, AsyncEngine or URL string, got {engine!r}")
    sync_engine = owned if owned is not None else engine
    try:
        with sync_engine.connect() as conn:  # type: ignore[union-attr]
            try:
                yield _target(engine if owned is None else owned), conn
            finally:
                conn.rollback()
    finally:
        if owned is not None:
            owned.dispose()


def _snapshot_postgresql(conn: Connection, ignore: frozenset[str]) -> DatabaseSnapshot:
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_MS)}")
    cursor = conn.exec_driver_sql(
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%' "
        "ORDER BY 1, 2"
    )
    names = [(s, t) for s, t in cursor if not _ignored(f"{s}.{t}", ignore)]
    quote = conn.dialect.identifier_preparer.quote_identifier
    tables: dict[str, TableState] = {}
    for start in range(0, len(names), _PG_CHUNK):
        chunk = names[start : start + _PG_CHUNK]
        # Hashing and summing on the server: only two numbers per table cross the wire, and
        # a sum of row hashes does not depend on the order the rows come back in. ROW(t.*),
        # not t: a column named "t" would win over the whole-row reference.
        sql = " UNION ALL ".join(
            f"SELECT {i}, count(*), coalesce(sum(hashtextextended(ROW(t.*)::text, 0)), 0)::text "
            f"FROM {quote(schema)}.{quote(table)} AS t"
            for i, (schema, table) in enumerate(chunk)
        )
        for i, count, digest in conn.exec_driver_sql(sql):
            schema, table = chunk[i]
            tables[f"{schema}.{table}"] = TableState(int(count), str(digest))
    prepared = frozenset(
        str(gid)
        for (gid,) in conn.exec_driver_sql(
            "SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE database = current_database()"
        )
    )
    return DatabaseSnapshot("", tables, prepared)


def _snapshot_generic(conn: Connection, ignore: frozenset[str]) -> DatabaseSnapshot:
    import sqlalchemy as sa

    if conn.dialect.name == "sqlite":
        names = [
            ("main", name)
            for (name,) in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
            )
        ]
    else:
        inspector = sa.inspect(conn)
        schema = inspector.default_schema_name or ""
        names = [(schema, name) for name in inspector.get_table_names()]
    quote = conn.dialect.identifier_preparer.quote_identifier
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    tables: dict[str, TableState] = {}
    for schema, table in names:
        name = f"{schema}.{table}" if schema else table
        if _ignored(name, ignore):
            continue
        cursor = dbapi.cursor()
        try:
            cursor.execute(f"SELECT * FROM {quote(table)}")
            rows = cursor.fetchall()
        finally:
            cursor.close()
        # repr() first: hash(-1) == hash(-2) for ints, and that must not hide an update.
        tables[name] = TableState(len(rows), str(sum(map(hash, map(repr, rows)))))
    return DatabaseSnapshot("", tables)


def _snapshot_one(engine: EngineLike, ignore: frozenset[str]) -> DatabaseSnapshot:
    with _reader(engine) as (target, conn):
        if conn.dialect.name == "postgresql":
            result = _snapshot_postgresql(conn, ignore)
        else:
            result = _snapshot_generic(conn, ignore)
    return DatabaseSnapshot(target, result.tables, result.prepared)


def snapshot(*engines: EngineLike, ignore_tables: Iterable[str] = ()) -> Snapshot:
    """Row count and content hash of every table of every engine's database.

    ``engines`` are SQLAlchemy ``Engine``/``AsyncEngine`` objects or URL strings. The
    snapshot is read through a connection of its own, so it sees what is committed, not
    what an open transaction of the code under test holds. ``ignore_tables`` names tables
    (``"table"`` or ``"schema.table"``) left out. Content hashes are comparable only within
    one process.
    """
    ignore = frozenset(ignore_tables)
    return Snapshot(tuple(_snapshot_one(e, ignore) for e in engines), ignore, engines)


def database_endpoints(engines: Iterable[EngineLike]) -> list[str]:
    """``host:port`` of every engine's database, for the network allow list."""
    endpoints = []
    for engine in engines:
        if isinstance(engine, str):
            import sqlalchemy as sa

            url: Any = sa.make_url(engine)
        else:
            url = engine.url
        endpoint = endpoint_of_url(url)
        if endpoint:
            endpoints.append(endpoint)
    return endpoints


class assert_nothing_persisted:
    """Fail unless the databases are unchanged (and, as a block, no connection was opened).

    Called with ``since=`` a :func:`snapshot` taken earlier, it compares right away::

        before = snapshot(engine)
        run_shadow_code()
        assert_nothing_persisted(since=before)

    Used as a context manager it snapshots ``engines`` on entry and compares on exit; for
    the duration of the block it also refuses new outbound connections to anything but the
    engines' databases and ``allow_hosts`` (``block_network=False`` turns that off)::

        with assert_nothing_persisted(engine, allow_hosts=["broker:9092"]):
            run_shadow_code()

    Raises ``AssertionError`` naming each changed table and its row difference, each
    prepared transaction left behind, and each refused host.
    """

    def __init__(
        self,
        *engines: EngineLike,
        since: Snapshot | None = None,
        ignore_tables: Iterable[str] = (),
        allow_hosts: Sequence[str] = (),
        block_network: bool = True,
    ) -> None:
        self.engines = engines
        self.ignore_tables = frozenset(ignore_tables)
        self.allow_hosts = list(allow_hosts)
        self.block_network = block_network
        self.before: Snapshot | None = None
        self.network: NetworkBlock | None = None
        if since is not None:
            if engines:
                raise TypeError(
                    "assert_nothing_persisted(since=...) compares the engines of that snapshot; "
                    "do not pass engines as well"
                )
            self._compare(since, [])

    def _compare(self, before: Snapshot, blocked: list[str]) -> None:
        after = before.again()
        lines = before.differences(after)
        lines += [f"connection to {host} was refused" for host in dict.fromkeys(blocked)]
        if lines:
            raise AssertionError(
                "shadowguard: shadow code persisted something:\n" + "\n".join(lines)
            )

    def __enter__(self) -> Snapshot:
        self.before = snapshot(*self.engines, ignore_tables=self.ignore_tables)
        if self.block_network:
            allow = [*self.allow_hosts, *database_endpoints(self.engines)]
            self.network = NetworkBlock(allow)
            self.network.install()
        return self.before

    def __exit__(self, *exc: object) -> None:
        blocked: list[str] = []
        if self.network is not None:
            self.network.uninstall()
            blocked = self.network.blocked
            self.network = None
        assert self.before is not None
        before, self.before = self.before, None
        self._compare(before, blocked)
