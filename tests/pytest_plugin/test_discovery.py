"""A shadow test never passes having checked nothing; databases it does not name are found.

The inner runs have no ``shadowguard_engines`` fixture: every database below is found by the
plugin (a SQLite file opened through ``sqlite3``, a SQLAlchemy engine made at import time,
Django's configured databases). The outer test reads the peers afterwards: the leaked rows
are really there.
"""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.peers.mariadb import mysql_connect

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

CHECKED_NOTHING = "shadowguard: this shadow test checked nothing, so it cannot pass."


def _sqlite_file(path: Path) -> Path:
    """A SQLite file made before the test run, with one seed row in table ``t``."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id integer PRIMARY KEY, item text)")
        conn.execute("INSERT INTO t VALUES (1, 'seed')")
    conn.close()
    return path


def _rows(path: Path) -> list[int]:
    with closing(sqlite3.connect(path)) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM t ORDER BY id")]


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    """Run ``source`` as a test file in-process, next to an optional ``conftest``."""
    monkeypatch.setenv("SG_FILE", str(_sqlite_file(tmp_path / "app.db")))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")

    def run(source: str, conftest: str = "", *args: str) -> pytest.RunResult:
        if conftest:
            pytester.makeconftest(textwrap.dedent(conftest))
        pytester.makepyfile(test_inner="import os\nimport sqlite3\n\nimport pytest\n\n" + source)
        return pytester.runpytest("-p", "no:cacheprovider", "-rA", *args)

    return run


def test_raw_sqlite3_commit_to_a_file_made_before_the_test_fails_with_the_row_counted(
    run: Run, tmp_path: Path
) -> None:
    """No engines named, no guard installed: the file is found when the body opens it."""
    result = run(
        textwrap.dedent(
            """
            def insert(row_id):
                conn = sqlite3.connect(os.environ["SG_FILE"])
                conn.execute(f"INSERT INTO t VALUES ({row_id}, 'raw')")
                conn.commit()
                conn.close()

            @pytest.fixture
            def opened():
                conn = sqlite3.connect(os.environ["SG_FILE"])  # opened before the body
                yield conn
                conn.close()

            @pytest.mark.shadow
            def test_raw_commit():
                insert(2)

            @pytest.mark.shadow
            def test_connection_from_a_fixture(opened):
                opened.execute("INSERT INTO t VALUES (3, 'fixture')")
                opened.commit()

            @pytest.mark.shadow
            def test_errors_midway():
                insert(4)
                raise ValueError("boom")

            @pytest.mark.shadow
            def test_new_file(tmp_path):
                conn = sqlite3.connect(tmp_path / "new.db")
                conn.execute("CREATE TABLE n (x)")
                conn.commit()
                conn.close()

            @pytest.mark.shadow
            def test_reads_only():
                conn = sqlite3.connect(os.environ["SG_FILE"])
                assert conn.execute("SELECT count(*) FROM t").fetchone()[0] >= 1
                conn.close()

            import sqlalchemy as sa

            ENGINE = sa.create_engine(f"sqlite:///{os.environ['SG_FILE']}")  # at import time
            with ENGINE.connect() as conn:  # pooled: the body opens no new sqlite3 connection
                conn.exec_driver_sql("SELECT 1")

            @pytest.mark.shadow
            def test_raw_connection_of_an_engine_made_at_import():
                dbapi = ENGINE.raw_connection()
                dbapi.cursor().execute("INSERT INTO t VALUES (5, 'raw')")
                dbapi.commit()
                dbapi.close()

            @pytest.mark.shadow
            def test_memory_database_is_nothing_to_check():
                sqlite3.connect(":memory:").execute("CREATE TABLE m (x)")
            """
        )
    )
    result.assert_outcomes(passed=1, failed=6)
    path = tmp_path / "app.db"
    result.stdout.fnmatch_lines(
        [
            "*_ test_raw_commit _*",
            "shadowguard: this shadow test persisted something:",
            f"database sqlite file {path} (found, not named):",
            "  table main.t: 1 row before, 2 after (+1 row)",
            "hint: no database guard is installed (shadowguard.installed() is ?*), so nothing*",
            "*_ test_connection_from_a_fixture _*",
            "  table main.t: 2 rows before, 3 after (+1 row)",
            "*_ test_errors_midway _*",
            "E       ValueError: boom",
            "*shadowguard*",
            "  table main.t: 3 rows before, 4 after (+1 row)",
            "*_ test_new_file _*",
            "  table main.n: created (0 rows)",
            "*_ test_raw_connection_of_an_engine_made_at_import _*",
            "  table main.t: 4 rows before, 5 after (+1 row)",
            "*_ test_memory_database_is_nothing_to_check _*",
            CHECKED_NOTHING,
            "*shadowguard.install() in conftest.py*",
            "*a shadowguard_engines fixture in conftest.py*",
            "*@pytest.mark.shadow(check_database=False)*",
        ]
    )
    assert _rows(path) == [1, 2, 3, 4, 5]  # every write really reached the file


def test_a_shadow_test_that_checks_nothing_fails_and_says_what_to_configure(run: Run) -> None:
    source = textwrap.dedent(
        """
            @pytest.mark.shadow
            def test_nothing_configured():
                pass

            @pytest.mark.shadow(check_database=False)
            def test_declared_database_free():
                pass

            def test_fixture_form(shadow):
                pass

            def test_primary():
                pass
            """
    )
    result = run(source)
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines_random(
        ["FAILED*test_nothing_configured*", "FAILED*test_fixture_form*"]
    )
    # once per failing test's section; the short summary may repeat it, cut to the terminal width
    sections = result.stdout.str().split("short test summary info")[0]
    assert sections.count(CHECKED_NOTHING) == 2
    result = run(source, "", "--shadowguard-all")  # every test is shadow: the unmarked one too
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(["FAILED*test_primary*"])


def test_with_guards_installed_the_orm_commit_is_rolled_back_and_the_test_passes(
    run: Run, tmp_path: Path
) -> None:
    conftest = """
        import pytest
        import shadowguard

        @pytest.fixture(scope="session", autouse=True)
        def guards():
            shadowguard.install("sqlalchemy")
            yield
            shadowguard.uninstall()
        """
    result = run(
        textwrap.dedent(
            """
            import sqlalchemy as sa

            ENGINE = sa.create_engine(f"sqlite:///{os.environ['SG_FILE']}")  # at import time
            with ENGINE.connect() as conn:  # a pooled connection from before the test
                conn.exec_driver_sql("SELECT 1")

            @pytest.mark.shadow
            def test_orm_commit():
                with ENGINE.begin() as conn:
                    conn.exec_driver_sql("INSERT INTO t VALUES (5, 'orm')")

            @pytest.mark.shadow
            def test_nothing_to_do():
                pass

            @pytest.mark.shadow
            def test_raw_commit_still_caught():
                conn = sqlite3.connect(os.environ["SG_FILE"])  # no guard sees sqlite3
                conn.execute("INSERT INTO t VALUES (6, 'raw')")
                conn.commit()
                conn.close()
            """
        ),
        conftest,
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*_ test_raw_commit_still_caught _*", "*(+1 row)"])
    assert "hint: no database guard" not in result.stdout.str()
    assert _rows(tmp_path / "app.db") == [1, 6]


def test_hint_names_a_missing_database_guard(run: Run) -> None:
    conftest = """
        import pytest
        import shadowguard

        @pytest.fixture(scope="session", autouse=True)
        def guards():
            shadowguard.install("smtplib")  # a guard, but none for databases
            yield
            shadowguard.uninstall()
        """
    result = run(
        textwrap.dedent(
            """
            @pytest.mark.shadow
            def test_raw_commit():
                conn = sqlite3.connect(os.environ["SG_FILE"])
                conn.execute("INSERT INTO t VALUES (9, 'raw')")
                conn.commit()
                conn.close()
            """
        ),
        conftest,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["hint: no database guard is installed (shadowguard.installed() is ?'smtplib'?)*"]
    )


@pytest.mark.postgres
def test_engines_made_at_import_are_found_on_postgresql_and_mariadb(
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
    mariadb_url: str,
    mariadb_database: str,
) -> None:
    """Found at their first connection in the body, even one handed out by the pool."""
    pg = sa.create_engine(postgres_url)
    with pg.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE found_pg (id integer PRIMARY KEY)")
    maria = mysql_connect(mariadb_database)
    with maria.cursor() as cursor:
        cursor.execute("CREATE TABLE found_maria (id integer PRIMARY KEY)")
    monkeypatch.setenv("SG_PG", postgres_url)
    monkeypatch.setenv("SG_MARIA", mariadb_url)
    try:
        result = run(
            textwrap.dedent(
                """
                import sqlalchemy as sa
                from sqlalchemy.orm import Session

                PG = sa.create_engine(os.environ["SG_PG"])
                MARIA = sa.create_engine(os.environ["SG_MARIA"])
                with MARIA.connect() as conn:  # pooled: the body opens no new socket
                    conn.exec_driver_sql("SELECT 1")

                @pytest.mark.shadow
                def test_postgresql_commit():
                    with Session(PG) as session:
                        session.execute(sa.text("INSERT INTO found_pg VALUES (1)"))
                        session.commit()

                @pytest.mark.shadow
                def test_mariadb_commit():
                    with MARIA.begin() as conn:
                        conn.exec_driver_sql("INSERT INTO found_maria VALUES (1)")
                """
            )
        )
        result.assert_outcomes(failed=2)
        pg_target = sa.make_url(postgres_url).render_as_string()
        result.stdout.fnmatch_lines(
            [
                f"database {pg_target} (found, not named):",
                "  table public.found_pg: 0 rows before, 1 after (+1 row)",
                f"database {sa.make_url(mariadb_url).render_as_string()} (found, not named):",
                f"  table {mariadb_database}.found_maria: 0 rows before, 1 after (+1 row)",
            ]
        )
        assert "was refused" not in result.stdout.str()  # the plugin's own reads passed
        with pg.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM found_pg").scalar() == 1
        with maria.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM found_maria")
            assert cursor.fetchone()[0] == 1
    finally:
        with pg.begin() as conn:
            conn.exec_driver_sql("DROP TABLE found_pg")
        pg.dispose()
        with maria.cursor() as cursor:
            cursor.execute("DROP TABLE found_maria")
        maria.close()


def test_threads_writing_at_once_are_all_counted(run: Run, tmp_path: Path) -> None:
    """The first connection of any thread waits for the snapshot: no write slips before it."""
    result = run(
        textwrap.dedent(
            """
            import threading

            import shadowguard

            def insert(row_id):
                conn = sqlite3.connect(os.environ["SG_FILE"], timeout=10)
                conn.execute(f"INSERT INTO t VALUES ({row_id}, 'thread')")
                conn.commit()
                conn.close()

            @pytest.fixture
            def workers():
                return [
                    threading.Thread(target=shadowguard.propagate(insert), args=(i,))
                    for i in range(10, 18)
                ]

            @pytest.mark.shadow
            def test_parallel(workers):
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
            """
        )
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  table main.t: 1 row before, 9 after (+8 rows)"])
    assert len(_rows(tmp_path / "app.db")) == 9


DJANGO_CONFTEST = """
import json
import os

import django
from django.conf import settings

settings.configure(DATABASES=json.loads(os.environ["SG_DJANGO_DATABASES"]), USE_TZ=True)
django.setup()
"""


@pytest.mark.postgres
def test_django_configured_databases_are_found(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, postgres_url: str
) -> None:
    """SQLite and PostgreSQL aliases of Django's settings, without naming any engine."""
    import json

    path = _sqlite_file(tmp_path / "django.db")
    url = sa.make_url(postgres_url)
    pg = sa.create_engine(url)
    with pg.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE found_django (id integer PRIMARY KEY)")
    databases = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)},
        "pg": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": url.database,
            "USER": url.username,
            "HOST": url.host,
            "PORT": url.port,
        },
        "gone": {"ENGINE": "django.db.backends.postgresql", "NAME": "sg_no_such_database"},
    }
    monkeypatch.setenv("SG_DJANGO_DATABASES", json.dumps(databases))
    pytester.makeconftest(DJANGO_CONFTEST)
    pytester.makepyfile(
        test_inner="""
        import pytest
        from django.db import connections

        @pytest.mark.shadow
        def test_sqlite_alias():
            with connections["default"].cursor() as cursor:  # autocommit: committed at once
                cursor.execute("INSERT INTO t VALUES (7, 'django')")

        @pytest.mark.shadow
        def test_postgresql_alias():
            with connections["pg"].cursor() as cursor:
                cursor.execute("INSERT INTO found_django VALUES (1)")
        """
    )
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        result.assert_outcomes(failed=2)
        result.stdout.fnmatch_lines(
            [
                f"database django database 'default' ({path}) (found, not named):",
                "  table main.t: 1 row before, 2 after (+1 row)",
                "database django database 'pg' (postgresql+psycopg://*) (found, not named):",
                "  table public.found_django: 0 rows before, 1 after (+1 row)",
            ]
        )
        # An alias the plugin cannot read is named in the warnings summary, never silent.
        result.stdout.fnmatch_lines(["*could not read it, so it was not checked: django*'gone'*"])
        assert _rows(path) == [1, 7]
        with pg.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM found_django").scalar() == 1
    finally:
        with pg.begin() as conn:
            conn.exec_driver_sql("DROP TABLE found_django")
        pg.dispose()


def test_django_project_without_databases_checks_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SG_DJANGO_DATABASES", "{}")
    pytester.makeconftest(DJANGO_CONFTEST)
    pytester.makepyfile(
        test_inner="""
        import pytest

        @pytest.mark.shadow
        def test_shadow():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([CHECKED_NOTHING])
