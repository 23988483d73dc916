from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowguard._sql import POSTGRESQL, code, keywords, last_name, readings, split
from tests._sql_samples import READS, SEPARATORS, join
from tests.peers.postgres import PG_HOST, PG_PORT, PG_USER

_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=12,
)


def _dollar(tag: str, body: str) -> str:
    return f"${tag}${body}${tag}$"


def _dollar_closes_once(quoted: str) -> bool:
    """The body does not close the quote early, even with the closing tag's first ``$``.

    ``$$`` + ``$`` + ``$$`` reads as an empty quote followed by a stray ``$``.
    """
    delimiter = "$" + quoted.split("$")[1] + "$"
    rest = quoted[len(delimiter) :]
    return rest.find(delimiter) == len(rest) - len(delimiter)


# SQL literals whose text may hold anything a naive splitter trips on: ; ' " $ -- /* \
_LITERALS = st.one_of(
    _TEXT.map(lambda t: "'" + t.replace("'", "''") + "'"),
    _TEXT.map(lambda t: "E'" + t.replace("\\", "\\\\").replace("'", "\\'") + "'"),
    _TEXT.map(lambda t: '1 AS "' + t.replace('"', '""') + '"' if t else "2"),
    st.builds(
        _dollar,
        st.from_regex(r"[a-z_]{0,3}", fullmatch=True),
        _TEXT,
    ).filter(_dollar_closes_once),
)
_COMMENTS = st.one_of(
    st.just(""),
    _TEXT.map(lambda t: " -- " + t.replace("\n", " ").replace("\r", " ") + "\n"),
    _TEXT.filter(lambda t: "*/" not in t and "/*" not in t and not t.endswith("/")).map(
        lambda t: " /* " + t + " */ "
    ),
)
_STATEMENTS = st.lists(
    st.builds(lambda c1, lit, c2: f"{c1}SELECT {lit}{c2}", _COMMENTS, _LITERALS, _COMMENTS),
    min_size=1,
    max_size=4,
)


@given(_STATEMENTS, st.sampled_from([";", "; ", ";\n", " ;;  "]))
def test_split_returns_each_statement(statements: list[str], separator: str) -> None:
    sql = separator.join(statements) + separator
    assert split(sql) == [s.strip() for s in statements]


@given(_STATEMENTS)
def test_split_is_stable(statements: list[str]) -> None:
    parts = split(";".join(statements))
    # A part may end in a line comment: the separator goes on a line of its own.
    assert split("\n;".join(parts)) == parts
    assert all(split(part) == [part] for part in parts)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("", []),
        ("  ; -- only a comment\n ; /* and /* nested */ one */", []),
        ("SELECT 1; INSERT INTO t VALUES (1)", ["SELECT 1", "INSERT INTO t VALUES (1)"]),
        ("SELECT 'a;b' ; SELECT 2", ["SELECT 'a;b'", "SELECT 2"]),
        ("SELECT $f$;$x$;$f$; SELECT 2", ["SELECT $f$;$x$;$f$", "SELECT 2"]),
        ("SELECT a$b; SELECT $1; COMMIT", ["SELECT a$b", "SELECT $1", "COMMIT"]),
        ("SELECT 'a\\'; COMMIT; --'", ["SELECT 'a\\'", "COMMIT"]),
        ("SELECT E'a\\'; COMMIT; --'", ["SELECT E'a\\'; COMMIT; --'"]),
        ("SELECT 'unterminated; COMMIT", ["SELECT 'unterminated; COMMIT"]),
    ],
)
def test_split_examples(sql: str, expected: list[str]) -> None:
    assert split(sql) == expected


def test_keywords() -> None:
    assert keywords("/* x */ ((select 1))") == ["SELECT"]
    assert keywords("rollback work to savepoint s") == ["ROLLBACK", "WORK", "TO"]
    assert keywords("ROLLBACK PREPARED 'x'") == ["ROLLBACK", "PREPARED"]
    assert keywords('"COMMIT"') == []


@pytest.mark.parametrize(
    ("statement", "name"),
    [
        ("RELEASE SAVEPOINT S1", "s1"),
        ('RELEASE "S1" -- done', "S1"),
        ('ROLLBACK TO "a""b" /* x */', 'a"b'),
        ('RELEASE U&"s\\0031"', None),
        ("RELEASE 's1'", None),
        ("", None),
    ],
)
def test_last_name(statement: str, name: str | None) -> None:
    assert last_name(statement) == name


@pytest.fixture(scope="module")
def pg(postgres_database: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=postgres_database, autocommit=True
    ) as conn:
        yield conn


@pytest.mark.postgres
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_STATEMENTS, st.sampled_from([";", "; ", ";\n"]))
def test_postgres_runs_as_many_statements_as_split_finds(
    pg: psycopg.Connection[tuple[object, ...]], statements: list[str], separator: str
) -> None:
    """The splitter agrees with the server's own lexer on what is one statement."""
    sql = separator.join(statements)
    cursor = pg.execute(sql)  # no parameters: the simple query protocol, as Django's
    results = 1
    while cursor.nextset():
        results += 1
    assert results == len(split(sql))


@pytest.mark.postgres
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(READS, min_size=1, max_size=5), st.lists(SEPARATORS, min_size=5, max_size=5))
def test_the_splitter_agrees_with_postgresql(
    pg: psycopg.Connection[tuple[object, ...]], parts: list[str], seps: list[str]
) -> None:
    """PostgreSQL returns one result per statement it sees: the splitter sees as many."""
    sql = join(parts, seps)
    cursor = pg.execute(sql)
    results = 1
    while cursor.nextset():
        results += 1
    assert len(code(sql, POSTGRESQL)) == results == len(parts)
    assert len(split(sql)) == results


@pytest.mark.parametrize(
    ("sql", "dialect", "counts"),
    [
        ("SELECT 'a\\'; COMMIT; --'", "postgresql", [2, 1]),  # standard strings on, off
        ("SELECT 1 /*!50000 ; COMMIT */", "mysql", [2]),
        ("SELECT 1 # ; COMMIT", "mysql", [1]),
        ('SELECT "a\\"; COMMIT; --"', "mysql", [1, 3, 3]),  # default, no escapes, ANSI
        ("SELECT [a;b] FROM t", "sqlite", [1]),
        ("SELECT 1 /* /* */ ; COMMIT /* */", "sqlite", [2]),
    ],
)
def test_every_reading_of_a_dialect(sql: str, dialect: str, counts: list[int]) -> None:
    assert [len(split(sql, syntax)) for syntax in readings(sql, dialect)] == counts


def test_an_unknown_dialect_gets_every_reading() -> None:
    assert len(readings("SELECT '\\'")) > len(readings("SELECT 1")) > 2


def test_code_blanks_comments_and_empties_literals() -> None:
    sql = 'SELECT \'x;y\', "setval"(1), "a b" -- c\n; /* d */ SELECT $t$;$t$'
    assert code(sql) == ["SELECT '', setval(1), ''  \n", "   SELECT ''"]
    assert code("SELECT 1 /*!50000 , 2 */", readings("", "mysql")[0]) == ["SELECT 1   , 2  "]


def test_keywords_and_names_follow_the_reading() -> None:
    mysql = readings("", "mysql")[0]
    assert keywords("/*!50000 COMMIT */", syntax=mysql) == ["COMMIT"]
    assert keywords("/*!50000 COMMIT */") == []
    assert keywords("# x\nROLLBACK", syntax=mysql) == ["ROLLBACK"]
    assert last_name("RELEASE SAVEPOINT `s1`", mysql) is None
