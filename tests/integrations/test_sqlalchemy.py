"""The SQLAlchemy guard, proven on real PostgreSQL and SQLite: every write path, validation, install.

Every test asks an oracle of its own (a plain psycopg or sqlite3 connection) whether rows
exist: absent after the shadow run, present when the same code runs as primary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import column, delete, event, insert, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.orm import Session, sessionmaker

import shadowguard
from shadowguard import ShadowGuardError, ShadowSideEffectBlocked
from shadowguard.contract import is_wrapped
from shadowguard.integrations import sqlalchemy as sg
from shadowguard.integrations.sqlalchemy import _dialect
from tests.integrations._sa_backends import Backend, checked_out, core, model
from tests.integrations._sa_backends import backend as backend  # a fixture

SINK = "sqlalchemy"
pytestmark = pytest.mark.postgres


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


@pytest.mark.usefixtures("installed")
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


@pytest.mark.usefixtures("installed")
def test_unique_violation_reaches_the_app_as_on_primary(backend: Backend) -> None:
    backend.execute(f"INSERT INTO {backend.table} (id) VALUES (1)")
    engine = backend.engine()
    shadow_exc, primary_exc, scope = _both(lambda: _session_commit(engine, backend.table))
    assert type(shadow_exc) is type(primary_exc) is sa_exc.IntegrityError
    assert type(shadow_exc.orig) is type(primary_exc.orig)
    assert [s.error for s in scope.suppressed] == [shadow_exc]
    assert backend.count() == 1


@pytest.mark.usefixtures("installed")
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


@pytest.mark.usefixtures("installed")
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


@pytest.mark.usefixtures("installed")
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


def test_install_through_the_top_level_api(backend: Backend) -> None:
    assert "sqlalchemy" in shadowguard.install("sqlalchemy")
    try:
        with shadowguard.shadow():
            _engine_begin(backend.engine(), backend.table)
        assert backend.count() == 0
    finally:
        shadowguard.uninstall("sqlalchemy")


@pytest.mark.usefixtures("installed")
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
        _dialect.wrap_dialect_class(type("Alien", (), {}))


@pytest.mark.usefixtures("installed")
def test_suppression_tags_the_span(backend: Backend, span_exporter: Any) -> None:
    from opentelemetry import trace

    engine = backend.engine()
    with trace.get_tracer("test").start_as_current_span("request"), shadowguard.shadow():
        _session_commit(engine, backend.table)
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["db.write_suppressed"] is True


def test_install_takes_no_options() -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\) allow.*takes no options"):
        sg.install(allow=["x"])


def test_a_statement_in_flight_at_uninstall_wraps_nothing_again(backend: Backend) -> None:
    """A guarded call that began before uninstall() and ends after it patches no class."""
    engine = backend.engine()
    sg.install()
    in_flight: Any = DefaultDialect.do_execute
    sg.uninstall()
    with engine.connect() as c, shadowguard.shadow():
        cursor = c.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        in_flight(engine.dialect, cursor, "SELECT 1", (), None)
        cursor.close()
    assert not any(
        is_wrapped(vars(type(engine.dialect)).get(n)) for n in ("do_execute", "do_commit")
    )
    assert not is_wrapped(DefaultDialect.do_execute)


@pytest.mark.usefixtures("installed")
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
