"""SQL strings written to trip a careless splitter, shared by the splitter's tests and
the SQLAlchemy guard's."""

from __future__ import annotations

from hypothesis import strategies as st

# Statements that read, written to trip a careless splitter: keywords, semicolons and
# quote characters inside literals, quoted identifiers and comments.
READS = st.sampled_from(
    [
        "SELECT 1",
        "SELECT 'COMMIT; INSERT INTO x VALUES (1)'",
        "SELECT 'it''s; COMMIT'",
        "SELECT E'\\'; COMMIT; --'",
        "SELECT $$ ; COMMIT $$",
        "SELECT $tag$ $$ ; COMMIT $$ $tag$",
        'SELECT 1 AS "COMMIT;"',
        'SELECT 1 AS "a""; COMMIT"',
        "SELECT 1 /* ; COMMIT /* nested ; */ still ; */",
        "SELECT 1 -- ; COMMIT\n",
        "SELECT 'copy into t' AS into_",
        "VALUES (';')",
        "SHOW search_path",
    ]
)
SEPARATORS = st.sampled_from([";", "; ", ";\n", " ;", "; -- c\n", ";/* c */"])


def join(parts: list[str], seps: list[str]) -> str:
    """``parts`` joined, each with the separator of its place."""
    return (
        "".join(p + s for p, s in zip(parts[:-1], seps[: len(parts) - 1], strict=True)) + parts[-1]
    )
