"""The SQL statement classifier (shadowguard._statements), without a database.

Whether a rollback undoes a statement (``write``), the pool's clean-up does (``session``),
or nothing does (``refuse``), whatever the spelling, the quoting and the company it keeps.
The guards' behaviour on real databases is tested with each guard.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowguard import _statements as stm
from tests._sql_samples import READS, SEPARATORS, join

# -- one statement ---------------------------------------------------------------------

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


#: One statement each, read as PostgreSQL.
_ONE_STATEMENT = [
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
    # Functions no rollback undoes.
    ("SELECT setval('s', 1)", stm.REFUSE),
    ("SELECT \"setval\"('s', 1)", stm.REFUSE),
    ("SELECT setval /* */ ('s', 1)", stm.REFUSE),
    ("SELECT pg_terminate_backend(1)", stm.REFUSE),
    ("SELECT pg_cancel_backend(1)", stm.REFUSE),
    ("SELECT dblink_exec('c', 'INSERT INTO t VALUES (1)')", stm.REFUSE),
    ("SELECT * FROM dblink('c', 'SELECT 1') AS t(i int)", stm.REFUSE),
    ("SELECT lo_import('/etc/passwd')", stm.REFUSE),
    ("SELECT lo_export(1, '/tmp/x')", stm.REFUSE),
    ("SELECT pg_create_logical_replication_slot('s', 'pgoutput')", stm.REFUSE),
    ("DO $$ BEGIN PERFORM setval('s', 1); END $$", stm.REFUSE),
    ("SELECT lo_unlink(1)", stm.WRITE),
    ("SELECT lo_create(0)", stm.WRITE),
    ("SELECT pg_notify('c', 'x')", stm.WRITE),
    ("SELECT nextval('s')", stm.READ),
    ("SELECT 'setval' AS name", stm.READ),
]


def test_temporary_tables_are_ddl_outside_postgresql() -> None:
    assert stm.classify("CREATE TEMP TABLE x (i int)", "sqlite")[0] == stm.REFUSE


# -- several statements in one string --------------------------------------------------

_DANGER = st.sampled_from(
    [
        ("COMMIT", stm.REFUSE),
        ("END", stm.REFUSE),
        ("SELECT setval('s', 1)", stm.REFUSE),
        ("DROP TABLE t", stm.REFUSE),
        ("SELECT * INTO t2 FROM t", stm.REFUSE),
        ("INSERT INTO t VALUES (';')", stm.WRITE),
        ("DELETE FROM t", stm.WRITE),
        ("DO $$ BEGIN END $$", stm.UNKNOWN),
    ]
)


@given(
    st.lists(READS, min_size=0, max_size=4),
    _DANGER,
    st.lists(READS, min_size=0, max_size=4),
    st.lists(SEPARATORS, min_size=8, max_size=8),
)
def test_the_most_dangerous_statement_wins(
    before: list[str], danger: tuple[str, str], after: list[str], seps: list[str]
) -> None:
    parts = [*before, danger[0], *after]
    sql = join(parts, seps)
    assert stm.classify(sql, "postgresql")[0] == danger[1]
    # An unknown dialect: every reading, so a literal may count as code, never the reverse.
    assert stm.rank(stm.classify(sql)[0]) >= stm.rank(danger[1])


@given(st.lists(READS, min_size=1, max_size=5), st.lists(SEPARATORS, min_size=5, max_size=5))
def test_reads_hidden_words_are_reads(parts: list[str], seps: list[str]) -> None:
    """Literals, quoted identifiers and comments are skipped: no word in them counts."""
    assert stm.classify(join(parts, seps), "postgresql")[0] == stm.READ


#: Several statements in one string, per dialect.
_SEVERAL = [
    ("SELECT 1; COMMIT", "sqlite", stm.REFUSE),
    ("SELECT [a;b] FROM t; SELECT 2", "sqlite", stm.READ),
    ("SELECT 'a\\'; COMMIT; --'", "postgresql", stm.REFUSE),  # standard strings
    ("SELECT E'a\\'; COMMIT; --'", "postgresql", stm.READ),
    ("SELECT 'a\\''; COMMIT; --'", "postgresql", stm.REFUSE),  # escape strings on
    ("SELECT 'a\\''; COMMIT; --'", "mysql", stm.REFUSE),
    ("SELECT 1 /*!50000 ; COMMIT */", "mysql", stm.REFUSE),
    ("SELECT 1 # ; COMMIT", "mysql", stm.READ),
    ("SELECT `a;COMMIT` FROM t", "mysql", stm.READ),
    ("SELECT 1 /* /* */ ; COMMIT /* */", "", stm.REFUSE),
    ("SAVEPOINT a; ROLLBACK TO SAVEPOINT a", "postgresql", stm.TXN),
    ("BEGIN; INSERT INTO t VALUES (1)", "postgresql", stm.REFUSE),
]


@pytest.mark.parametrize(
    ("sql", "dialect", "kind"),
    [*((sql, "postgresql", kind) for sql, kind in _ONE_STATEMENT), *_SEVERAL],
)
def test_classifier_table(sql: str, dialect: str, kind: str) -> None:
    assert stm.classify(sql, dialect)[0] == kind


# -- MySQL and MariaDB commit before some statements -----------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "LOCK TABLES t WRITE",
        "UNLOCK TABLES",
        "RENAME TABLE a TO b",
        "SET @@autocommit = 1",
        "SET SESSION autocommit = 1",
        "SET sql_mode = '', autocommit = 1",
        "SET GLOBAL max_connections = 1",
        "XA START 'x'",
        "FLUSH TABLES",
    ],
)
def test_mysql_refusals(sql: str) -> None:
    assert stm.classify(sql, "mysql")[0] == stm.REFUSE
    assert stm.classify(sql, "mariadb")[0] == stm.REFUSE


def test_mysql_session_settings_are_allowed() -> None:
    assert stm.classify("SET NAMES utf8mb4", "mysql")[0] == stm.SESSION
    isolation = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
    assert stm.classify(isolation, "mysql")[0] == stm.SESSION
    assert stm.classify("BEGIN", "postgresql")[0] == stm.TXN
