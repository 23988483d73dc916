"""The pytest plugin, run on test files of its own with ``pytester``.

Each inner run uses a real database (SQLite file or the session's PostgreSQL database,
passed by URL in an environment variable) and a real loopback HTTP server; the outer test
checks the peers afterwards: the leaked row is really there, the server really got no hit.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from tests.pytest_plugin.conftest import BOTH_DATABASES, Database, LoopbackServer

pytest_plugins = ["pytester"]

CONFTEST = """
import os

import pytest
import sqlalchemy as sa


@pytest.fixture(scope="session")
def engine():
    engine = sa.create_engine(os.environ["SG_DB_URL"])
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def shadowguard_engines(engine):
    return [engine]


@pytest.fixture
def anyio_backend():
    return "asyncio"
"""

HEADER = """
import asyncio
import http.client
import os
import socket

import pytest
import shadowguard

TABLE = os.environ["SG_TABLE"]
PORT = int(os.environ["SG_HTTP_PORT"])
ADDRESS = f"127.0.0.1:{PORT}"


def get():
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    finally:
        conn.close()


def raw_insert(engine, row_id):
    dbapi = engine.raw_connection()
    try:
        cursor = dbapi.cursor()
        cursor.execute(f"INSERT INTO {TABLE} (id, item) VALUES ({row_id}, 'raw')")
        dbapi.commit()
    finally:
        dbapi.close()
"""

Run = Callable[..., pytest.RunResult]


@pytest.fixture
def run(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    db: Database,
    loopback_server: LoopbackServer,
) -> Run:
    """Write ``source`` (after HEADER) as a test file and run pytest on it in-process."""
    monkeypatch.setenv("SG_DB_URL", db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("SG_TABLE", db.name)
    monkeypatch.setenv("SG_HTTP_PORT", str(loopback_server.port))
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")

    def run(source: str, *args: str) -> pytest.RunResult:
        pytester.makepyfile(test_inner=HEADER + textwrap.dedent(source))
        return pytester.runpytest("-p", "no:cacheprovider", "-rA", *args)

    return run


@BOTH_DATABASES
def test_database_channel(run: Run, db: Database) -> None:
    """A clean shadow test passes; ORM commit (no guard) and raw DBAPI writes fail it."""
    result = run(
        """
        from sqlalchemy import Integer, String
        from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

        class Base(DeclarativeBase):
            pass

        class Order(Base):
            __tablename__ = TABLE
            id: Mapped[int] = mapped_column(Integer, primary_key=True)
            item: Mapped[str] = mapped_column(String)

        @shadowguard.side_effect
        def save(engine, row_id):
            with Session(engine) as session:
                session.add(Order(id=row_id, item="saved"))
                session.commit()

        @pytest.fixture
        def seeded(engine):
            assert not shadowguard.is_shadow()
            save(engine, 50)  # primary: a fixture may write, before the snapshot
            yield
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DELETE FROM {TABLE} WHERE id = 50")

        @pytest.mark.shadow
        def test_clean(engine, seeded):
            assert shadowguard.is_shadow()
            save(engine, 100)
            with engine.connect() as conn:
                assert conn.exec_driver_sql(f"SELECT count(*) FROM {TABLE}").scalar() == 2
            assert shadowguard.current_scope().counts["call"] == 1

        def test_primary(engine):
            assert not shadowguard.is_shadow()
            save(engine, 200)

        @pytest.mark.shadow
        def test_orm_commit(engine):
            assert shadowguard.installed() == []
            with Session(engine) as session:
                session.add(Order(id=2, item="orm"))
                session.commit()

        @pytest.mark.shadow
        def test_raw_insert(engine):
            raw_insert(engine, 3)

        @pytest.mark.shadow
        def test_raw_update(engine):
            dbapi = engine.raw_connection()
            dbapi.cursor().execute(f"UPDATE {TABLE} SET item = 'changed' WHERE id = 1")
            dbapi.commit()
            dbapi.close()
        """
    )
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*_ test_orm_commit _*",
            "shadowguard: this shadow test persisted something:",
            f"database {db.engine.url.render_as_string()}:",
            f"  table {db.qualified}: 2 rows before, 3 after (+1 row)",
            "hint: no database guard is installed (shadowguard.installed() is ?*), so nothing*",
            "*_ test_raw_insert _*",
            f"  table {db.qualified}: 3 rows before, 4 after (+1 row)",
            "*_ test_raw_update _*",
            f"  table {db.qualified}: row contents changed (4 rows before and after)",
            "LEAKED test_inner.py::test_orm_commit: database",
            "LEAKED test_inner.py::test_raw_insert: database",
            "LEAKED test_inner.py::test_raw_update: database",
        ]
    )
    with db.engine.connect() as conn:
        rows: dict[int, str] = dict(conn.exec_driver_sql(f"SELECT id, item FROM {db.name}").all())
    # The seed, the primary write and the three leaks; never the guarded shadow write.
    assert rows == {1: "changed", 2: "orm", 3: "raw", 200: "saved"}


def test_unknown_http_client_and_raw_socket_fail_naming_the_host(
    run: Run, loopback_server: LoopbackServer
) -> None:
    result = run(
        """
        @pytest.mark.shadow
        def test_http_client():
            get()

        @pytest.mark.shadow
        def test_swallowed():
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=5)
            except Exception:
                pass

        @pytest.mark.shadow
        def test_raw_socket():
            with socket.socket() as sock:
                sock.connect_ex(("127.0.0.1", PORT))

        @pytest.mark.shadow(allow_hosts=[ADDRESS])
        def test_allowed():
            assert get() == 200

        def test_primary_after_shadow_tests():
            assert get() == 200
        """
    )
    result.assert_outcomes(failed=3, passed=2)
    addr = loopback_server.address
    out = result.stdout.str()
    assert f"outbound connection to {addr} during a shadow test" in out
    assert f"@pytest.mark.shadow(allow_hosts=['{addr}'])" in out
    result.stdout.fnmatch_lines(
        ["LEAKED test_inner.py::test_swallowed: network", f"    connection to {addr} was refused"]
    )
    assert loopback_server.hits == 2  # only the allowed and the primary request arrived


PRECEDENCE = """
pytestmark = pytest.mark.shadow(allow_hosts=[ADDRESS])

def test_module_marker(engine):
    assert shadowguard.is_shadow()
    assert get() == 200

@pytest.mark.shadow(allow_hosts=[])
def test_function_marker_wins_key_by_key():
    get()

class TestClass:
    pytestmark = pytest.mark.shadow(check_database=False, reason="class")

    def test_class_marker(self, engine):
        assert shadowguard.current_scope().reason == "class"
        assert get() == 200  # the module's allow_hosts still applies
        raw_insert(engine, 10)  # the database is not checked for this class

@pytest.mark.shadow(enabled=False)
def test_opted_out(engine):
    assert not shadowguard.is_shadow()
    raw_insert(engine, 11)
    get()
"""


@pytest.mark.parametrize("option", [[], ["--shadowguard-all"], ["--shadowguard-audit"]])
def test_marker_precedence(run: Run, option: list[str]) -> None:
    result = run(PRECEDENCE, *option)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["FAILED*test_function_marker_wins_key_by_key*"])


def test_fixture_makes_a_shadow_test_and_yields_its_scope(
    run: Run, loopback_server: LoopbackServer
) -> None:
    result = run(
        """
        @shadowguard.side_effect
        def charge():
            raise AssertionError("never called in shadow")

        def test_fixture(shadow, engine):
            assert shadowguard.current_scope() is shadow
            charge()
            assert shadow.counts == {"call": 1}
            assert shadow.suppressed[0].target == "test_inner.charge"

        def test_fixture_leak(shadow, engine):
            raw_insert(engine, 20)

        class TestOwnFixtureNamedShadow:
            @pytest.fixture
            def shadow(self):
                return "a project fixture of the same name"

            def test_primary(self, shadow):
                assert shadow == "a project fixture of the same name"
                assert not shadowguard.is_shadow()

        class TestRuntimeHosts:
            @pytest.fixture
            def shadowguard_allow_hosts(self):
                return [ADDRESS]

            def test_allowed_by_fixture(self, shadow):
                assert get() == 200

        @pytest.mark.shadow(enabled=False)
        def test_contradiction(shadow):
            pass

        @pytest.mark.shadow(allow_host=["x"])
        def test_typo():
            pass
        """
    )
    result.assert_outcomes(passed=3, failed=1, errors=2)
    assert loopback_server.hits == 1
    result.stdout.fnmatch_lines_random(
        [
            "LEAKED test_inner.py::test_fixture_leak: database",
            "*requests the 'shadow' fixture but is marked shadow(enabled=False)*",
            "*@pytest.mark.shadow takes keyword options only; accepted are reason, allow_hosts,*"
            "(got allow_host)*",
        ]
    )


UNMARKED = """
def test_clean(engine):
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT * FROM {TABLE}").fetchall()

def test_leaky(engine):
    raw_insert(engine, 30)
    try:
        get()
    except Exception:
        pass

@pytest.mark.shadow
def test_marked_leaky(engine):
    raw_insert(engine, 31)
"""


def test_without_option_unmarked_tests_run_as_primary(run: Run, db: Database) -> None:
    result = run(UNMARKED.replace("raw_insert(engine, 31)", "pass"))
    result.assert_outcomes(passed=3)
    assert "= shadowguard =" not in result.stdout.str()
    assert db.count() == 2


def test_option_all_fails_every_leaking_test(run: Run, loopback_server: LoopbackServer) -> None:
    result = run(UNMARKED, "--shadowguard-all")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines_random(
        ["FAILED*test_leaky*", "FAILED*test_marked_leaky*", "3 test(s) ran as shadow*, 2 leaked"]
    )
    assert loopback_server.hits == 0


def test_option_audit_reports_channels_without_failing(
    run: Run, db: Database, loopback_server: LoopbackServer
) -> None:
    result = run(UNMARKED, "--shadowguard-audit")
    result.assert_outcomes(passed=2, failed=1)  # only the test marked shadow fails
    result.stdout.fnmatch_lines(
        [
            "*= shadowguard =*",
            "3 test(s) ran as shadow traffic, 2 leaked (audit: *)",
            "LEAKED test_inner.py::test_leaky: database, network",
            f"*table {db.qualified}: 1 row before, 2 after (+1 row)",
            f"    connection to {loopback_server.address} was refused",
            "LEAKED test_inner.py::test_marked_leaky: database",
        ]
    )
    assert loopback_server.hits == 0


def test_async_tests_with_pytest_asyncio_and_anyio(
    run: Run, db: Database, loopback_server: LoopbackServer
) -> None:
    result = run(
        """
        async def in_task():
            return shadowguard.is_shadow()

        @pytest.fixture
        async def started_runner():
            # An async fixture starts anyio's runner task before the test: the test must
            # still see its scope.
            await asyncio.sleep(0)
            return not shadowguard.is_shadow()

        @pytest.mark.shadow
        @pytest.mark.asyncio
        async def test_asyncio(engine):
            assert shadowguard.is_shadow() and await asyncio.create_task(in_task())
            raw_insert(engine, 40)

        @pytest.mark.shadow
        @pytest.mark.asyncio
        async def test_asyncio_network():
            await asyncio.open_connection("127.0.0.1", PORT)

        @pytest.mark.asyncio
        async def test_asyncio_fixture(shadow):
            assert shadowguard.current_scope() is shadow

        @pytest.mark.shadow
        @pytest.mark.anyio
        async def test_anyio(engine, started_runner):
            assert started_runner and shadowguard.is_shadow()
            raw_insert(engine, 41)

        @pytest.mark.anyio
        async def test_anyio_fixture(shadow, started_runner):
            assert shadowguard.current_scope() is shadow

        @pytest.mark.asyncio
        async def test_primary_async():
            assert not shadowguard.is_shadow()
        """
    )
    result.assert_outcomes(passed=3, failed=3)
    result.stdout.fnmatch_lines_random(
        [
            "LEAKED test_inner.py::test_asyncio: database",
            "LEAKED test_inner.py::test_anyio: database",
            f"*outbound connection to {loopback_server.address} during a shadow test*",
        ]
    )
    assert db.count() == 3
    assert loopback_server.hits == 0


@pytest.mark.postgres
def test_asyncpg_engine_connects_and_its_write_is_caught(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, postgres_asyncpg_url: str
) -> None:
    """asyncpg goes through Python sockets: the engine's endpoint is allowed, its write seen."""
    import sqlalchemy as sa

    sync = sa.create_engine(postgres_asyncpg_url.replace("+asyncpg", "+psycopg"))
    db = Database(sync, "public")
    monkeypatch.setenv("SG_ASYNC_URL", postgres_asyncpg_url)
    monkeypatch.setenv("SG_TABLE", db.name)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_inner="""
        import os
        import pytest
        from sqlalchemy.ext.asyncio import create_async_engine

        @pytest.fixture
        def shadowguard_engines():
            return [create_async_engine(os.environ["SG_ASYNC_URL"])]

        @pytest.mark.shadow
        @pytest.mark.asyncio
        async def test_write(shadowguard_engines):
            engine = shadowguard_engines[0]
            async with engine.begin() as conn:
                await conn.exec_driver_sql(f"INSERT INTO {os.environ['SG_TABLE']} VALUES (9, 'a')")
            await engine.dispose()
        """
    )
    try:
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["LEAKED *: database", f"*public.{db.name}: *(+1 row)"])
        assert "refused" not in result.stdout.str()
    finally:
        with sync.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {db.name}")
        sync.dispose()


def test_audit_covers_unittest_and_doctest_items_and_notes_unchecked_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, loopback_server: LoopbackServer
) -> None:
    monkeypatch.setenv("SG_HTTP_PORT", str(loopback_server.port))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_inner='''
        import os
        import socket
        import unittest

        import shadowguard

        class Case(unittest.TestCase):
            def test_unit(self):
                assert shadowguard.is_shadow()
                socket.create_connection(("127.0.0.1", int(os.environ["SG_HTTP_PORT"])))

        def documented():
            """
            >>> import shadowguard
            >>> shadowguard.is_shadow()
            True
            """
        '''
    )
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--doctest-modules", "--shadowguard-audit"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "2 test(s) ran as shadow traffic, 1 leaked*",
            "2 of them checked nothing: no database found to snapshot and no guard installed*",
            "LEAKED test_inner.py::Case::test_unit: network",
        ]
    )
    assert loopback_server.hits == 0


def test_plugin_is_registered_and_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    assert "--shadowguard-audit" in pytester.runpytest("--help").stdout.str()
    result = pytester.runpytest("-p", "no:shadowguard", "--help")
    assert "--shadowguard-audit" not in result.stdout.str()


def test_plugin_import_is_cheap() -> None:
    """pytest loads the plugin in every project: it must not import optional libraries."""
    code = (
        "import sys, shadowguard.pytest_plugin; "
        "print(sorted(m for m in ('sqlalchemy', 'psycopg', 'hypothesis', 'shadowguard.testing')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
