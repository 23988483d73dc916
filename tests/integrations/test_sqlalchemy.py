"""The SQLAlchemy guard, proven on real PostgreSQL and SQLite.

Every test asks an oracle of its own (a plain psycopg or sqlite3 connection) whether rows
exist: absent after the shadow run, present when the same code runs as primary.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    column,
    delete,
    event,
    insert,
    select,
    table,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

import shadowguard
from shadowguard import ShadowGuardError, ShadowSideEffectBlocked, _config
from shadowguard import _statements as stm
from shadowguard.integrations import sqlalchemy as sg
from tests.integrations._sa_backends import (
    Backend,
    advisory_locks,
    assert_refused_then_stored,
    checked_out,
    make_backend,
)
from tests.integrations._support import installing

pytestmark = pytest.mark.postgres


@pytest.fixture
def guard() -> Iterator[None]:
    with installing(sg):
        yield


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from make_backend(request, request.param)


def model(table_name: str) -> Any:
    """A fresh ORM class mapped to ``table_name``."""

    class Base(DeclarativeBase):
        pass

    class Row(Base):
        __tablename__ = table_name
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(20), server_default="dflt")
        n: Mapped[int] = mapped_column(Integer, server_default="0")

    return Row


def core(table_name: str) -> Any:
    return table(table_name, column("id"), column("name"), column("n"))


# -- one test per write path -----------------------------------------------------------


@dataclass
class WritePath:
    name: str
    run: Callable[[Any, str], None]
    where: str = "id = 1"
    shadow_count: int = 0
    primary_count: int = 1
    seed: bool = False
    engine_kwargs: dict[str, Any] = field(default_factory=dict)


def _session_commit(engine: Any, t: str) -> None:
    with Session(engine) as s:
        s.add(model(t)(id=1))
        s.commit()


def _sessionmaker_begin(engine: Any, t: str) -> None:
    with sessionmaker(engine).begin() as s:
        s.add(model(t)(id=1))


def _session_connection_commit(engine: Any, t: str) -> None:
    with Session(engine) as s:
        s.connection().execute(insert(core(t)).values(id=1))
        s.connection().commit()


def _core_commit_as_you_go(engine: Any, t: str) -> None:
    with engine.connect() as c:
        c.execute(insert(core(t)).values(id=1))
        c.commit()


def _engine_begin(engine: Any, t: str) -> None:
    with engine.begin() as c:
        c.execute(insert(core(t)).values(id=1))


def _joined(mode: str) -> Callable[[Any, str], None]:
    def run(engine: Any, t: str) -> None:
        with engine.connect() as c:
            trans = c.begin()
            with Session(bind=c, join_transaction_mode=mode) as s:  # type: ignore[arg-type]
                s.add(model(t)(id=1))
                s.commit()
            if trans.is_active:
                trans.commit()

    return run


def _core_begin_nested(engine: Any, t: str) -> None:
    with engine.connect() as c, c.begin(), c.begin_nested():
        c.execute(insert(core(t)).values(id=1))


def _session_begin_nested(engine: Any, t: str) -> None:
    with Session(engine) as s:
        s.begin()
        with s.begin_nested():
            s.add(model(t)(id=1))
        s.commit()


def _bulk_save_objects(engine: Any, t: str) -> None:
    with Session(engine) as s:
        s.bulk_save_objects([model(t)(id=1)])
        s.commit()


def _bulk_insert_mappings(engine: Any, t: str) -> None:
    with Session(engine) as s:
        s.bulk_insert_mappings(model(t), [{"id": 1}])
        s.commit()


def _session_execute_insert(engine: Any, t: str) -> None:
    with Session(engine) as s:
        s.execute(insert(core(t)).values(id=1))
        s.commit()


def _session_execute_text(engine: Any, t: str) -> None:
    with Session(engine) as s:
        s.execute(text(f"INSERT INTO {t} (id) VALUES (:id)"), {"id": 1})
        s.commit()


def _session_execute_update(engine: Any, t: str) -> None:
    with Session(engine) as s:
        s.execute(update(core(t)).where(column("id") == 1).values(n=5))
        s.commit()


def _session_execute_delete(engine: Any, t: str) -> None:
    with Session(engine) as s:
        s.execute(delete(core(t)).where(column("id") == 1))
        s.commit()


def _pool_commit_on_return(engine: Any, t: str) -> None:
    # The pool itself commits when the connection comes back (reset_on_return="commit").
    raw = engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute(f"INSERT INTO {t} (id) VALUES (1)")
    cursor.close()
    raw.close()


PATHS = [
    WritePath("Session.commit", _session_commit),
    WritePath("sessionmaker.begin", _sessionmaker_begin),
    WritePath("session.connection().commit", _session_connection_commit),
    WritePath("Connection.commit (commit as you go)", _core_commit_as_you_go),
    WritePath("engine.begin", _engine_begin),
    *(
        WritePath(f"Session joined to a connection ({mode})", _joined(mode))
        for mode in ("conditional_savepoint", "create_savepoint", "rollback_only", "control_fully")
    ),
    WritePath("Connection.begin_nested in an outer transaction", _core_begin_nested),
    WritePath("Session.begin_nested", _session_begin_nested),
    WritePath("bulk_save_objects", _bulk_save_objects),
    WritePath("bulk_insert_mappings", _bulk_insert_mappings),
    WritePath("session.execute(insert())", _session_execute_insert),
    WritePath("session.execute(text())", _session_execute_text),
    WritePath(
        "session.execute(update())",
        _session_execute_update,
        where="id = 1 AND n = 5",
        seed=True,
    ),
    WritePath(
        "session.execute(delete())",
        _session_execute_delete,
        shadow_count=1,
        primary_count=0,
        seed=True,
    ),
    WritePath(
        "pool reset_on_return='commit'",
        _pool_commit_on_return,
        engine_kwargs={"pool_reset_on_return": "commit"},
    ),
]


@pytest.mark.usefixtures("guard")
@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_write_path_leaves_nothing_in_shadow_and_persists_as_primary(
    backend: Backend, path: WritePath
) -> None:
    """Shadow: the row really is absent afterwards. Primary: the same code persists it."""
    t = backend.table
    if path.seed:
        backend.execute(f"INSERT INTO {t} (id) VALUES (1)")
    engine = backend.engine(**path.engine_kwargs)
    with shadowguard.shadow("test") as scope:
        path.run(engine, t)
        assert backend.count(path.where) == path.shadow_count
    assert backend.count(path.where) == path.shadow_count
    assert scope.counts["db.commit"] >= 1
    assert all(s.target.startswith(backend.url.split(":")[0]) for s in scope.suppressed)
    assert checked_out(engine) == 0

    path.run(engine, t)
    assert backend.count(path.where) == path.primary_count


# -- validation ------------------------------------------------------------------------


def _both(run: Callable[[], None]) -> tuple[BaseException, BaseException, shadowguard.Scope]:
    """Run ``run`` in shadow then as primary; return both exceptions and the scope."""
    with shadowguard.shadow() as scope, pytest.raises(sa_exc.DBAPIError) as shadow_exc:
        run()
    with pytest.raises(sa_exc.DBAPIError) as primary_exc:
        run()
    return shadow_exc.value, primary_exc.value, scope


@pytest.mark.usefixtures("guard")
def test_unique_violation_reaches_the_app_as_on_primary(backend: Backend) -> None:
    backend.execute(f"INSERT INTO {backend.table} (id) VALUES (1)")
    engine = backend.engine()
    shadow_exc, primary_exc, scope = _both(lambda: _session_commit(engine, backend.table))
    assert type(shadow_exc) is type(primary_exc) is sa_exc.IntegrityError
    assert type(shadow_exc.orig) is type(primary_exc.orig)
    assert [s.error for s in scope.suppressed] == [shadow_exc]
    assert backend.count() == 1


@pytest.mark.usefixtures("guard")
def test_data_error_reaches_the_app_as_on_primary(pg: Backend) -> None:
    engine = pg.engine()

    def run() -> None:
        with Session(engine) as s:
            s.add(model(pg.table)(id=1, name="x" * 50))
            s.commit()

    shadow_exc, primary_exc, scope = _both(run)
    assert type(shadow_exc) is type(primary_exc) is sa_exc.DataError
    assert scope.suppressed[0].error is shadow_exc
    assert pg.count() == 0


@pytest.fixture
def deferred(pg: Backend) -> tuple[Backend, str, str]:
    parent = pg.create_table(f"{pg.table}_p", "id INTEGER PRIMARY KEY")
    child = pg.create_table(
        f"{pg.table}_c",
        f"id INTEGER PRIMARY KEY, pid INTEGER REFERENCES {parent} (id) "
        "DEFERRABLE INITIALLY DEFERRED",
    )
    return pg, parent, child


@pytest.mark.usefixtures("guard")
@pytest.mark.parametrize("via", ["session", "core"])
def test_deferred_constraint_is_validated_before_the_rollback(
    deferred: tuple[Backend, str, str], via: str
) -> None:
    """A deferred foreign key fails at commit in shadow exactly as on the primary."""
    pg, _, child = deferred
    engine = pg.engine()

    def run() -> None:
        if via == "session":
            with Session(engine) as s:
                s.execute(text(f"INSERT INTO {child} (id, pid) VALUES (1, 999)"))
                s.commit()
        else:
            with engine.begin() as c:
                c.execute(text(f"INSERT INTO {child} (id, pid) VALUES (1, 999)"))

    shadow_exc, primary_exc, scope = _both(run)
    assert type(shadow_exc) is type(primary_exc) is sa_exc.IntegrityError
    assert type(shadow_exc.orig) is type(primary_exc.orig)
    assert "foreign key" in str(shadow_exc.orig).lower()
    assert scope.counts["db.commit"] == 1
    # a Core commit records the driver's exception, which SQLAlchemy then wraps
    assert scope.suppressed[0].error is (shadow_exc if via == "session" else shadow_exc.orig)
    assert pg.count(table=child) == 0


@pytest.mark.usefixtures("guard")
def test_deferral_survives_a_shadow_commit(deferred: tuple[Backend, str, str]) -> None:
    """After a validated commit, later transactions still defer their checks."""
    pg, parent, child = deferred
    engine = pg.engine()
    with shadowguard.shadow(), Session(engine) as s:
        s.execute(text(f"INSERT INTO {parent} (id) VALUES (1)"))
        s.commit()
        # child before its parent: legal with a deferred key, as on the primary
        s.execute(text(f"INSERT INTO {child} (id, pid) VALUES (1, 2)"))
        s.execute(text(f"INSERT INTO {parent} (id) VALUES (2)"))
        s.commit()
        assert s.scalar(text(f"SELECT count(*) FROM {child}")) == 1
        # a failed commit leaves none of its rows visible, as on the primary
        s.execute(text(f"INSERT INTO {child} (id, pid) VALUES (2, 999)"))
        with pytest.raises(sa_exc.IntegrityError):
            s.commit()
        s.rollback()
        assert s.scalar(text(f"SELECT count(*) FROM {child}")) == 1
        assert s.scalar(text(f"SELECT count(*) FROM {parent}")) == 2
    assert pg.count(table=parent) == pg.count(table=child) == 0


# -- read your own writes --------------------------------------------------------------


@pytest.mark.usefixtures("guard")
def test_session_reads_its_own_writes_until_the_scope_ends(backend: Backend) -> None:
    t = backend.create_table(
        f"{backend.table}_g",
        "id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(20) NOT NULL DEFAULT 'dflt'"
        if backend.name == "sqlite"
        else "id SERIAL PRIMARY KEY, name VARCHAR(20) NOT NULL DEFAULT 'dflt'",
    )

    class Base(DeclarativeBase):
        pass

    class Row(Base):
        __tablename__ = t
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        name: Mapped[str] = mapped_column(String(20), server_default="dflt")

    engine = backend.engine()
    with shadowguard.shadow() as scope:
        with Session(engine) as s:
            first = Row()
            s.add(first)
            s.commit()
            assert first.id == 1  # generated id, reloaded after commit
            assert first.name == "dflt"  # server default, refreshed
            s.add(Row(name="second"))
            s.commit()
            assert [r.name for r in s.scalars(select(Row).order_by(Row.id))] == [
                "dflt",
                "second",
            ]
            s.add(Row(name="rolled back"))
            s.flush()
            s.rollback()
            assert s.scalar(select(func_count(Row))) == 2
            assert backend.count(table=t) == 0
        assert checked_out(engine) == 0  # closing the Session released its connection
    assert scope.counts["db.commit"] == 2
    assert backend.count(table=t) == 0
    with Session(engine) as s:
        s.add(Row())
        s.commit()
    assert backend.count(table=t) == 1


def func_count(entity: Any) -> Any:
    from sqlalchemy import func

    return select(func.count()).select_from(entity).scalar_subquery()


@pytest.mark.usefixtures("guard")
def test_scope_end_rolls_back_a_session_left_open(backend: Backend) -> None:
    engine = backend.engine()
    s = Session(engine)
    with shadowguard.shadow():
        s.add(model(backend.table)(id=1))
        s.commit()
        assert checked_out(engine) == 1
    assert checked_out(engine) == 0
    assert backend.count() == 0
    s.close()


@pytest.mark.usefixtures("guard")
def test_a_session_outliving_the_scope_serves_no_ghost_rows(backend: Backend) -> None:
    Row = model(backend.table)
    engine = backend.engine()
    with Session(engine, expire_on_commit=False) as s:
        with shadowguard.shadow():
            s.add(Row(id=1))
            s.commit()
            assert s.get(Row, 1) is not None
        assert s.get(Row, 1) is None  # primary again: the shadow row never existed
        s.add(Row(id=2))
        s.commit()
    assert backend.count("id = 2") == 1
    assert backend.count("id = 1") == 0


def test_uninstall_releases_connections_held_for_sessions(backend: Backend) -> None:
    engine = backend.engine()
    sg.install()
    try:
        with shadowguard.shadow():
            s = Session(engine)
            s.add(model(backend.table)(id=1))
            s.commit()
            assert checked_out(engine) == 1
            sg.uninstall()
            assert checked_out(engine) == 0
        s.close()
    finally:
        sg.uninstall()
    assert backend.count() == 0


@pytest.mark.usefixtures("guard")
def test_scope_end_rolls_back_a_connection_left_in_a_transaction(backend: Backend) -> None:
    engine = backend.engine()
    with engine.connect() as c:
        with shadowguard.shadow():
            c.execute(insert(core(backend.table)).values(id=1))
        assert not c.in_transaction()
        c.commit()  # primary: nothing of the shadow's is left to commit
    assert backend.count() == 0


@pytest.mark.usefixtures("guard")
@pytest.mark.parametrize("shadow_work", ["read", "write", "write and commit"])
def test_a_scope_inside_a_primary_transaction_keeps_the_primary_writes(
    backend: Backend, shadow_work: str
) -> None:
    """A what-if in shadow on the primary's connection undoes its own part only."""
    engine = backend.engine()
    rows = core(backend.table)
    with engine.connect() as c:
        c.execute(insert(rows).values(id=1))
        with shadowguard.shadow():
            assert c.execute(text(f"SELECT count(*) FROM {backend.table}")).scalar() == 1
            if shadow_work != "read":
                c.execute(insert(rows).values(id=99))
            if shadow_work == "write and commit":
                c.commit()
                c.execute(insert(rows).values(id=98))
        c.execute(insert(rows).values(id=2))
        c.commit()
    ids = backend.oracle(f"SELECT id FROM {backend.table} ORDER BY id")
    assert [r[0] for r in ids] == [1, 2]


@pytest.mark.usefixtures("guard")
def test_a_primary_session_used_in_a_scope_keeps_its_writes(backend: Backend) -> None:
    engine = backend.engine()
    Row = model(backend.table)
    with Session(engine) as s:
        s.add(Row(id=1))
        s.flush()
        with shadowguard.shadow():
            assert s.scalar(text(f"SELECT count(*) FROM {backend.table}")) == 1
            s.execute(insert(core(backend.table)).values(id=99))
        s.add(Row(id=2))
        s.commit()
    ids = backend.oracle(f"SELECT id FROM {backend.table} ORDER BY id")
    assert [r[0] for r in ids] == [1, 2]


@pytest.mark.usefixtures("guard")
def test_process_wide_shadow_mode_without_a_scope(backend: Backend) -> None:
    engine = backend.engine()
    _config.PROCESS.shadow = True
    try:
        assert shadowguard.current_scope() is None
        with Session(engine) as s:
            s.add(model(backend.table)(id=1))
            s.commit()
            assert s.get(model(backend.table), 1) is not None
        assert checked_out(engine) == 0
        _core_commit_as_you_go(engine, backend.table)
    finally:
        _config.PROCESS.shadow = False
    assert backend.count() == 0


# -- refused before execution ----------------------------------------------------------


@pytest.mark.usefixtures("guard")
@pytest.mark.parametrize("how", ["engine", "execution_options", "driver"])
def test_writes_on_autocommit_connections_are_refused(backend: Backend, how: str) -> None:
    engine = backend.engine(**({"isolation_level": "AUTOCOMMIT"} if how == "engine" else {}))
    if how == "driver":

        @event.listens_for(engine, "connect")
        def driver_autocommit(dbapi_connection: Any, record: Any) -> None:
            if backend.name == "sqlite":
                dbapi_connection.isolation_level = None
            else:
                dbapi_connection.autocommit = True

    def run() -> None:
        with engine.connect() as c:
            if how == "execution_options":
                c = c.execution_options(isolation_level="AUTOCOMMIT")
            assert c.execute(text("SELECT 1")).scalar() == 1  # reads are fine
            c.execute(insert(core(backend.table)).values(id=1))

    with shadowguard.shadow(), pytest.raises(ShadowSideEffectBlocked, match="AUTOCOMMIT"):
        run()
    assert backend.count() == 0
    run()
    assert backend.count() == 1


@pytest.mark.usefixtures("guard")
def test_unknown_statements_on_autocommit_fail_closed(pg: Backend) -> None:
    engine = pg.engine(isolation_level="AUTOCOMMIT")
    sql = text(f"DO $$ BEGIN INSERT INTO {pg.table} (id) VALUES (1); END $$")
    assert_refused_then_stored(pg, engine, lambda c: c.execute(sql), match="DO on an AUTOCOMMIT")


@pytest.mark.usefixtures("guard")
@pytest.mark.parametrize(
    "sql",
    [
        "COMMIT",
        "  /* why */ commit",
        "END",
        "COMMIT PREPARED 'sg'",
        "ROLLBACK PREPARED 'sg'",
        "PREPARE TRANSACTION 'sg'",
    ],
)
def test_transaction_control_in_sql_text_is_refused(backend: Backend, sql: str) -> None:
    engine = backend.engine()
    with shadowguard.shadow(), engine.connect() as c:
        c.execute(insert(core(backend.table)).values(id=1))
        with pytest.raises(ShadowSideEffectBlocked):
            c.execute(text(sql))
    assert backend.count() == 0


@pytest.mark.usefixtures("guard")
@pytest.mark.parametrize(
    "ddl",
    [
        "create_all",
        "CREATE TABLE {t}_new (i INTEGER)",
        "DROP TABLE {t}",
        "ALTER TABLE {t} ADD x INT",
    ],
)
@pytest.mark.parametrize("autocommit", [False, True])
def test_ddl_is_refused(backend: Backend, ddl: str, autocommit: bool) -> None:
    kwargs = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    engine = backend.engine(**kwargs)
    t = backend.table
    with shadowguard.shadow(), pytest.raises(ShadowSideEffectBlocked):  # noqa: PT012
        if ddl == "create_all":
            metadata = MetaData()
            Table(f"{t}_meta", metadata, Column("i", Integer))
            metadata.create_all(engine)
        else:
            with engine.begin() as c:
                c.execute(text(ddl.format(t=t)))
    tables = (
        backend.oracle("SELECT name FROM sqlite_master WHERE type = 'table'")
        if backend.name == "sqlite"
        else backend.oracle("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    )
    names = {r[0] for r in tables}
    assert t in names
    assert f"{t}_new" not in names
    assert f"{t}_meta" not in names
    assert backend.count() == 0  # the table is intact and has no column x
    backend.oracle(f"SELECT id, name, n FROM {t}")


@pytest.mark.usefixtures("guard")
@pytest.mark.parametrize("how", ["session", "connection"])
def test_two_phase_commit_is_refused(pg: Backend, how: str) -> None:
    engine = pg.engine()
    with shadowguard.shadow(), pytest.raises(ShadowSideEffectBlocked, match="two-phase"):  # noqa: PT012
        if how == "session":
            with Session(engine, twophase=True) as s:
                s.add(model(pg.table)(id=1))
                s.commit()
        else:
            with engine.connect() as c:
                c.begin_twophase()
    assert pg.oracle("SELECT count(*) FROM pg_prepared_xacts")[0][0] == 0
    assert pg.count() == 0


# -- no trace on pooled connections ----------------------------------------------------


@pytest.mark.usefixtures("guard")
@pytest.mark.parametrize("autocommit", [False, True])
def test_pooled_connection_keeps_no_session_state(pg: Backend, autocommit: bool) -> None:
    engine = pg.engine(pool_size=1, max_overflow=0)
    with shadowguard.shadow(), engine.connect() as c:
        if autocommit:
            c = c.execution_options(isolation_level="AUTOCOMMIT")
        pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
        c.execute(text("SET statement_timeout = 4321"))
        c.execute(text("SET search_path = pg_catalog, public"))
        c.execute(text("SELECT pg_advisory_lock(424242)"))
        c.execute(text("CREATE TEMP TABLE sg_tmp (i INTEGER)"))
        c.execute(text("LISTEN sg_channel"))
        c.commit()
        assert advisory_locks(pg, pid) == 1
    with engine.connect() as c:
        assert c.execute(text("SELECT pg_backend_pid()")).scalar() == pid  # the same connection
        assert c.execute(text("SHOW statement_timeout")).scalar() == "0"
        assert c.execute(text("SHOW search_path")).scalar() == '"$user", public'
        assert c.execute(text("SELECT to_regclass('pg_temp.sg_tmp')")).scalar() is None
        assert c.execute(text("SELECT count(*) FROM pg_listening_channels()")).scalar() == 0
    assert advisory_locks(pg, pid) == 0


@pytest.fixture
def role(pg: Backend) -> Iterator[str]:
    name = f"sg_role_{uuid.uuid4().hex[:8]}"
    pg.execute(f"CREATE ROLE {name}")
    try:
        yield name
    finally:
        pg.execute(f"DROP ROLE IF EXISTS {name}")


@pytest.mark.usefixtures("guard")
@pytest.mark.parametrize(
    "sql",
    [
        "SET ROLE {role}",
        "SET SESSION AUTHORIZATION {role}",
        "SELECT set_config('role', '{role}', false)",
    ],
)
@pytest.mark.parametrize("primary_role", [False, True])
def test_a_shadow_role_does_not_outlive_the_checkout(
    pg: Backend, role: str, sql: str, primary_role: bool
) -> None:
    """Neither SET ROLE nor SET SESSION AUTHORIZATION is in pg_settings or reset by RESET ALL."""
    engine = pg.engine(pool_size=1, max_overflow=0)
    expected = ("postgres", "postgres")
    if primary_role:
        expected = ("postgres", "pg_monitor")

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET ROLE pg_monitor")
            dbapi_connection.commit()

    users = text("SELECT session_user::text, current_user::text")
    with engine.connect() as c:
        pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
        assert tuple(c.execute(users).one()) == expected
    with shadowguard.shadow(), engine.connect() as c:
        c = c.execution_options(isolation_level="AUTOCOMMIT")
        c.execute(text(sql.format(role=role)))
        assert c.execute(text("SELECT current_user::text")).scalar() == role
    with engine.connect() as c:
        assert c.execute(text("SELECT pg_backend_pid()")).scalar() == pid  # restored, not dropped
        assert tuple(c.execute(users).one()) == expected


def _primary_session_state(engine: Any, temp_table: bool = False) -> None:
    """A connect hook, as applications have: the state every primary checkout relies on."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET statement_timeout = 7777")
        cursor.execute("SET application_name = 'primary-app'")
        if temp_table:
            cursor.execute("CREATE TEMP TABLE primary_tmp (i INTEGER)")
        cursor.close()
        dbapi_connection.commit()


@pytest.mark.usefixtures("guard")
def test_primary_session_state_survives_shadow_use(pg: Backend) -> None:
    """The clean-up undoes the shadow's changes only: a connect hook's SETs stay."""
    engine = pg.engine(pool_size=1, max_overflow=0)
    _primary_session_state(engine)
    with engine.connect() as c:
        pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
    with shadowguard.shadow(), engine.connect() as c:
        c = c.execution_options(isolation_level="AUTOCOMMIT")
        c.execute(text("SET statement_timeout = 4321"))
        c.execute(text("SET application_name = 'shadow'"))
        c.execute(text("SELECT set_config('sg.custom', 'x', false)"))
        c.execute(text("SELECT pg_advisory_lock(1, 2)"))
        c.execute(text("SELECT pg_advisory_lock_shared(99)"))
        c.execute(text('LISTEN "Odd Channel"'))
    with engine.connect() as c:
        assert c.execute(text("SELECT pg_backend_pid()")).scalar() == pid
        assert c.execute(text("SHOW statement_timeout")).scalar() == "7777ms"
        assert c.execute(text("SHOW application_name")).scalar() == "primary-app"
        assert c.execute(text("SELECT current_setting('sg.custom', true)")).scalar() in ("", None)
        assert c.execute(text("SELECT count(*) FROM pg_listening_channels()")).scalar() == 0
    assert advisory_locks(pg, pid) == 0


@pytest.mark.usefixtures("guard")
def test_a_connection_that_cannot_be_restored_is_discarded(pg: Backend) -> None:
    """The primary has a temporary table of its own and the shadow adds one: start afresh."""
    engine = pg.engine(pool_size=1, max_overflow=0)
    _primary_session_state(engine, temp_table=True)
    with shadowguard.shadow(), engine.connect() as c:
        c = c.execution_options(isolation_level="AUTOCOMMIT")
        pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
        c.execute(text("CREATE TEMP TABLE shadow_tmp (i INTEGER)"))
    with engine.connect() as c:
        assert c.execute(text("SELECT pg_backend_pid()")).scalar() != pid
        assert c.execute(text("SELECT to_regclass('pg_temp.shadow_tmp')")).scalar() is None
        assert c.execute(text("SELECT to_regclass('pg_temp.primary_tmp')")).scalar() is not None
        assert c.execute(text("SHOW statement_timeout")).scalar() == "7777ms"


@pytest.mark.usefixtures("guard")
def test_server_side_cursors_in_shadow(pg: Backend) -> None:
    pg.execute(f"INSERT INTO {pg.table} (id) SELECT generate_series(1, 50)")
    engine = pg.engine()
    with shadowguard.shadow(), engine.connect() as c:
        rows = c.execution_options(stream_results=True, max_row_buffer=5).execute(
            text(f"SELECT id FROM {pg.table} ORDER BY id")
        )
        assert [r[0] for r in rows] == list(range(1, 51))


# -- the primary path ------------------------------------------------------------------


def test_primary_runs_the_same_sql_in_the_same_order(backend: Backend) -> None:
    """Guarded or not, a primary workload sends the database the same statements."""
    engine = backend.engine()
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    @event.listens_for(engine, "commit")
    def commit(conn: Any) -> None:
        sent.append("<commit>")

    @event.listens_for(engine, "rollback")
    def rollback(conn: Any) -> None:
        sent.append("<rollback>")

    def workload(first_id: int) -> list[str]:
        sent.clear()
        Row = model(backend.table)
        with Session(engine) as s:
            s.add(Row(id=first_id))
            s.commit()
            s.execute(update(core(backend.table)).values(n=first_id))
            s.rollback()
            s.add(Row(id=first_id + 1))
            s.commit()
        with engine.begin() as c:
            c.execute(insert(core(backend.table)).values(id=first_id + 2))
        return list(sent)

    unguarded = workload(1)
    sg.install()
    try:
        guarded = workload(11)
    finally:
        sg.uninstall()
    assert guarded == unguarded
    assert guarded.count("<commit>") == 3
    assert backend.count() == 6


# -- coverage of objects and the install life cycle -------------------------------------


def test_objects_created_before_install_are_guarded(backend: Backend) -> None:
    engine = backend.engine()
    session = Session(engine)
    connection = engine.connect()
    sg.install()
    try:
        with shadowguard.shadow():
            # (SQLite: the Session holds its write lock until the scope ends, so it goes last)
            connection.execute(insert(core(backend.table)).values(id=2))
            connection.commit()
            session.add(model(backend.table)(id=1))
            session.commit()
        assert backend.count("id IN (1, 2)") == 0
    finally:
        session.close()
        connection.close()
        sg.uninstall()


def test_uninstall_restores_the_unguarded_library(backend: Backend) -> None:
    engine = backend.engine()
    sg.install()
    sg.install()  # idempotent
    sg.uninstall()
    sg.uninstall()
    with shadowguard.shadow():
        _session_commit(engine, backend.table)
    assert backend.count() == 1  # unguarded: this is what the guard prevents


def test_install_through_the_top_level_api(backend: Backend) -> None:
    assert "sqlalchemy" in shadowguard.install("sqlalchemy")
    try:
        with shadowguard.shadow():
            _engine_begin(backend.engine(), backend.table)
        assert backend.count() == 0
    finally:
        shadowguard.uninstall("sqlalchemy")


@pytest.mark.usefixtures("guard")
def test_a_dialect_overriding_commit_and_execute_is_covered_too(backend: Backend) -> None:
    """A dialect class born after install() with its own do_commit/do_execute."""
    engine = backend.engine()
    dialect = engine.dialect
    base = type(dialect)
    dialect.__class__ = type(
        "OwnDialect",
        (base,),
        {
            "do_commit": lambda self, c: c.commit(),
            "do_execute": lambda self, cur, st, p, ctx=None: cur.execute(st, p),
            "supports_statement_cache": True,
        },
    )
    with shadowguard.shadow():
        _core_commit_as_you_go(engine, backend.table)
        with engine.connect() as c, pytest.raises(ShadowSideEffectBlocked):
            c.execute(text("COMMIT"))
    assert backend.count() == 0
    _core_commit_as_you_go(engine, backend.table)
    assert backend.count() == 1


def test_a_dialect_outside_defaultdialect_is_refused_loudly() -> None:
    with pytest.raises(ShadowGuardError, match="DefaultDialect"):
        sg._cover(type("Alien", (), {}))


@pytest.mark.usefixtures("guard")
def test_suppression_tags_the_span(backend: Backend, span_exporter: Any) -> None:
    from opentelemetry import trace

    engine = backend.engine()
    with trace.get_tracer("test").start_as_current_span("request"), shadowguard.shadow():
        _session_commit(engine, backend.table)
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["db.write_suppressed"] is True


def test_install_takes_no_options() -> None:
    with pytest.raises(TypeError, match="no options"):
        sg.install(allow=["x"])


# -- the statement classifier ----------------------------------------------------------

_prefix = st.lists(st.sampled_from([" ", "\n", "\t", "-- note\n", "/* c */", "("]), max_size=4).map(
    "".join
)
_case = st.sampled_from([str.upper, str.lower, str.title])


@given(_prefix, _case, st.sampled_from(sorted(stm._DDL)), st.text(max_size=30))
def test_classifier_refuses_ddl_whatever_the_spelling(prefix, case, verb, rest) -> None:
    kind, _ = stm.classify(f"{prefix}{case(verb)} {rest}", "postgresql")
    assert kind == stm.REFUSE


@given(_prefix, _case, st.sampled_from(["COMMIT", "END", "COMMIT PREPARED 'x'"]))
def test_classifier_refuses_transaction_control(prefix, case, sql) -> None:
    assert stm.classify(f"{prefix}{case(sql)}")[0] == stm.REFUSE


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT 1", stm.READ),
        ("select * into new_t from t", stm.REFUSE),
        ("WITH x AS (SELECT 1) SELECT * FROM x", stm.READ),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", stm.WRITE),
        ("EXPLAIN SELECT 1", stm.READ),
        ("EXPLAIN ANALYZE DELETE FROM t", stm.WRITE),
        ("INSERT INTO t VALUES (1)", stm.WRITE),
        ("SET statement_timeout = 1", stm.SESSION),
        ("SET CONSTRAINTS ALL IMMEDIATE", stm.TXN),
        ("SAVEPOINT sa_1", stm.TXN),
        ("PRAGMA table_info(t)", stm.READ),
        ("PRAGMA journal_mode = WAL", stm.REFUSE),
        ("CREATE TEMP TABLE x (i int)", stm.SESSION),
        ("DISCARD ALL", stm.REFUSE),
        ("DEALLOCATE ALL", stm.REFUSE),
        ("DO $$ BEGIN END $$", stm.UNKNOWN),
        ("", stm.UNKNOWN),
    ],
)
def test_classifier_table(sql: str, kind: str) -> None:
    assert stm.classify(sql, "postgresql")[0] == kind


def test_temporary_tables_are_ddl_outside_postgresql() -> None:
    assert stm.classify("CREATE TEMP TABLE x (i int)", "sqlite")[0] == stm.REFUSE


@pytest.mark.usefixtures("guard")
def test_a_bare_pool_commit_on_return_is_suppressed(tmp_path: Any) -> None:
    """A Pool made without an engine commits through its own minimal dialect."""
    import sqlite3

    from sqlalchemy.pool import QueuePool

    path = tmp_path / "bare.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER)")
    pool = QueuePool(lambda: sqlite3.connect(path), reset_on_return="commit")  # type: ignore[arg-type]

    def write() -> None:
        raw = pool.connect()
        raw.cursor().execute("INSERT INTO t VALUES (1)")
        raw.close()

    def count() -> int:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM t").fetchone()[0])

    with shadowguard.shadow() as scope:
        write()
    assert count() == 0
    assert scope.suppressed[0].target == "a connection pool without an engine"
    write()
    assert count() == 1
    pool.dispose()
