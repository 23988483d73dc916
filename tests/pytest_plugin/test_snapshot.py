"""Database snapshots see every committed change, on SQLite and PostgreSQL, via any path."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine

from shadowguard.testing import (
    DatabaseSnapshot,
    Snapshot,
    TableState,
    assert_nothing_persisted,
    snapshot,
)
from tests.pytest_plugin.conftest import BOTH_DATABASES, Database, LoopbackServer


@BOTH_DATABASES
def test_unchanged_database_passes(db: Database) -> None:
    before = snapshot(db.engine)
    with assert_nothing_persisted(db.engine), db.engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT * FROM {db.name}").fetchall()
    assert_nothing_persisted(since=before)


@BOTH_DATABASES
def test_raw_dbapi_insert_is_named_with_its_row_difference(db: Database) -> None:
    with (
        pytest.raises(AssertionError) as info,
        assert_nothing_persisted(db.engine),
    ):
        db.raw_write("INSERT INTO {table} VALUES (2, 'leak')")
    assert f"table {db.qualified}: 1 row before, 2 after (+1 row)" in str(info.value)
    assert db.count() == 2  # the write really reached the database


@BOTH_DATABASES
def test_update_and_delete_are_seen(db: Database) -> None:
    before = snapshot(db.engine)
    db.raw_write("UPDATE {table} SET item = 'changed' WHERE id = 1")
    with pytest.raises(AssertionError, match=r"row contents changed \(1 row before and after\)"):
        assert_nothing_persisted(since=before)
    before = snapshot(db.engine)
    db.raw_write("DELETE FROM {table}")
    with pytest.raises(AssertionError, match=r"1 row before, 0 after \(-1 row\)"):
        assert_nothing_persisted(since=before)


@BOTH_DATABASES
def test_schema_changes_are_seen(db: Database) -> None:
    before = snapshot(db.engine)
    extra = f"extra_{uuid.uuid4().hex[:8]}"
    with db.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {extra} (id integer)")
    try:
        with pytest.raises(AssertionError, match=rf"table \w+\.{extra}: created \(0 rows\)"):
            assert_nothing_persisted(since=before)
        before = snapshot(db.engine)
    finally:
        with db.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {extra}")
    with pytest.raises(AssertionError, match=rf"{extra}: dropped \(had 0 rows\)"):
        assert_nothing_persisted(since=before)


@BOTH_DATABASES
def test_ignored_tables_are_left_out(db: Database) -> None:
    for ignore in ([db.name], [db.qualified]):
        with assert_nothing_persisted(db.engine, ignore_tables=ignore):
            db.raw_write("INSERT INTO {table} (id, item) SELECT max(id) + 1, 'x' FROM {table}")


@BOTH_DATABASES
def test_open_transaction_is_not_persisted_yet(db: Database) -> None:
    """The snapshot reads through its own connection: only committed rows count."""
    before = snapshot(db.engine)
    with db.engine.connect() as conn:
        conn.exec_driver_sql(f"INSERT INTO {db.name} VALUES (5, 'pending')")
        assert_nothing_persisted(since=before)
        conn.commit()
    with pytest.raises(AssertionError, match=r"\+1 row"):
        assert_nothing_persisted(since=before)


@BOTH_DATABASES
def test_url_strings_work(db: Database) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    with pytest.raises(AssertionError, match=r"\+1 row"), assert_nothing_persisted(url):
        db.raw_write("INSERT INTO {table} VALUES (3, 'leak')")


@BOTH_DATABASES
def test_since_with_engines_is_refused(db: Database) -> None:
    with pytest.raises(TypeError, match="do not pass engines"):
        assert_nothing_persisted(db.engine, since=snapshot(db.engine))


@BOTH_DATABASES
def test_network_is_refused_inside_the_block(db: Database, loopback_server: LoopbackServer) -> None:
    import http.client

    def swallowing_get() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", loopback_server.port, timeout=5)
        with contextlib.suppress(Exception):  # swallowing the error does not hide the attempt
            conn.request("GET", "/")

    with pytest.raises(AssertionError) as info, assert_nothing_persisted(db.engine):
        swallowing_get()
    assert f"connection to {loopback_server.address} was refused" in str(info.value)
    assert loopback_server.hits == 0
    with assert_nothing_persisted(db.engine, allow_hosts=[loopback_server.address]):
        conn = http.client.HTTPConnection("127.0.0.1", loopback_server.port, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
        conn.close()
    assert loopback_server.hits == 1


@pytest.mark.postgres
def test_asyncpg_engine_write_is_seen_and_its_connection_allowed(
    postgres_url: str, postgres_asyncpg_url: str
) -> None:
    """asyncpg connects through Python sockets: the database endpoint is allowed."""
    sync = sa.create_engine(postgres_url)
    db = Database(sync, "public")
    engine = create_async_engine(postgres_asyncpg_url)

    async def write() -> None:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"INSERT INTO {db.name} VALUES (7, 'async')")
        await engine.dispose()

    try:
        with pytest.raises(AssertionError) as info, assert_nothing_persisted(engine):
            asyncio.run(write())
        assert f"table public.{db.name}: 1 row before, 2 after (+1 row)" in str(info.value)
        assert "refused" not in str(info.value)
    finally:
        with sync.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {db.name}")
        sync.dispose()


@pytest.mark.postgres
def test_postgresql_types_and_prepared_transactions(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    name = f"typed_{uuid.uuid4().hex[:8]}"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE TABLE {name} (j jsonb, a int[], t timestamptz, n numeric, b bytea)"
            )
            conn.exec_driver_sql(
                f"INSERT INTO {name} VALUES ('{{\"k\": 1}}', '{{1,2}}', now(), 1.5, '\\x00'), "
                "(NULL, NULL, NULL, NULL, NULL)"
            )
        before = snapshot(engine)
        assert before.databases[0].tables[f"public.{name}"].rows == 2
        assert before.databases[0].prepared == frozenset()  # pg_prepared_xacts was read
        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE {name} SET j = '{{\"k\": 2}}' WHERE j IS NOT NULL")
        with pytest.raises(AssertionError, match=rf"public\.{name}: row contents changed"):
            assert_nothing_persisted(since=before)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        engine.dispose()


@pytest.mark.postgres
def test_lock_held_by_an_open_transaction_fails_fast(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shadowguard import testing

    monkeypatch.setattr(testing, "LOCK_TIMEOUT_MS", 100)
    engine = sa.create_engine(postgres_url)
    db = Database(engine, "public")
    try:
        with engine.connect() as holder:
            holder.exec_driver_sql(f"LOCK TABLE {db.name} IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                snapshot(engine)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {db.name}")
        engine.dispose()


def test_prepared_transaction_left_behind_is_reported() -> None:
    # The test server runs with max_prepared_transactions=0, so no real one can be made.
    table = {"public.t": TableState(0, "0")}
    before = DatabaseSnapshot("db", table, frozenset({"old"}))
    after = DatabaseSnapshot("db", table, frozenset({"old", "shadow-tx"}))
    assert Snapshot((before,)).differences(Snapshot((after,))) == [
        "database db:",
        "  prepared transaction 'shadow-tx' left behind "
        "(it can still be committed: COMMIT PREPARED or ROLLBACK PREPARED it)",
    ]


VALUES = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=8),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(VALUES, VALUES), max_size=6),
    data=st.data(),
)
def test_snapshot_changes_exactly_when_stored_rows_change(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[object, object]], data: st.DataObject
) -> None:
    """Equal snapshots iff equal multisets of stored rows (order never matters)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('h') / 'h.db'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (a, b)")
            conn.exec_driver_sql("INSERT INTO t VALUES (?, ?)", rows) if rows else None
            stored_before = sorted(map(repr, conn.exec_driver_sql("SELECT * FROM t")))
        before = snapshot(engine)
        action = data.draw(st.sampled_from(["insert", "update", "delete", "reorder"]))
        with engine.begin() as conn:
            if action == "insert":
                conn.exec_driver_sql(
                    "INSERT INTO t VALUES (?, ?)", data.draw(st.tuples(VALUES, VALUES))
                )
            elif action == "update" and rows:
                conn.exec_driver_sql(
                    "UPDATE t SET b = ? WHERE rowid = (SELECT min(rowid) FROM t)",
                    (data.draw(VALUES),),
                )
            elif action == "delete" and rows:
                conn.exec_driver_sql("DELETE FROM t WHERE rowid = (SELECT max(rowid) FROM t)")
            elif action == "reorder":
                conn.exec_driver_sql("CREATE TABLE t2 AS SELECT * FROM t ORDER BY rowid DESC")
                conn.exec_driver_sql("DELETE FROM t")
                conn.exec_driver_sql("INSERT INTO t SELECT * FROM t2")
                conn.exec_driver_sql("DROP TABLE t2")
            stored_after = sorted(map(repr, conn.exec_driver_sql("SELECT * FROM t")))
        changed = bool(before.differences(snapshot(engine)))
        assert changed == (stored_before != stored_after)
    finally:
        engine.dispose()
