"""A small SQL lexer for guards: split a string into statements, read leading keywords.

One :class:`Syntax` describes how a dialect quotes and comments: PostgreSQL (``''``
doubling, ``E'...'`` backslash escapes, ``$tag$`` bodies, nested ``/* */``), MySQL and
MariaDB (backslash escapes, ``` `...` ``` names, ``#`` comments, ``/*! */`` comments the
server runs) and SQLite (``[...]`` names). A server setting can change the reading
(``standard_conforming_strings``, ``NO_BACKSLASH_ESCAPES``, ``ANSI_QUOTES``), so
:func:`readings` gives every one a dialect allows and a guard judges the string in each:
a statement hidden from one reading is seen by another. Where a reading could misjudge
(an unterminated quote) it errs towards seeing more statements, never fewer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["POSTGRESQL", "Syntax", "code", "keywords", "last_name", "readings", "split"]

_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
_TOKEN = re.compile(rf"\s+|{_WORD.pattern}|.", re.S)
_IDENT = re.compile(r"[A-Za-z_][\w$]*\Z")


class Syntax:
    """How one SQL dialect (in one server setting) quotes and comments."""

    __slots__ = ("backslash", "dollar", "dquote_backslash", "mysql", "nested", "special")

    def __init__(
        self,
        *,
        backslash: bool = False,
        dquote_backslash: bool = False,
        nested: bool = False,
        dollar: bool = False,
        mysql: bool = False,
    ) -> None:
        self.backslash = backslash  # '\'' escapes in '...' strings
        self.dquote_backslash = dquote_backslash  # and in "..." (MySQL's strings)
        self.nested = nested  # /* /* */ */ nests (PostgreSQL)
        self.dollar = dollar  # $tag$ ... $tag$ (PostgreSQL)
        self.mysql = mysql  # `...`, # comments, /*! executed comments */
        tokens = [";", "'", '"', r"/\*"]
        if mysql:
            tokens += ["`", "#", r"\*/", r"--(?=\s|$)"]
        else:
            tokens.append("--")
        if dollar:
            tokens.append(r"(?<![\w$])\$(?:[A-Za-z_\x80-\U0010ffff][\w\x80-\U0010ffff]*)?\$")
        elif not mysql:
            tokens.append(r"\[")  # SQLite's [identifier]
        self.special = re.compile("|".join(tokens))

    def key(self, backslashes: bool) -> tuple[bool, ...]:
        """What the reading depends on: without a backslash, escapes make no difference."""
        return (
            self.backslash and backslashes,
            self.dquote_backslash and backslashes,
            self.nested,
            self.dollar,
            self.mysql,
        )


POSTGRESQL = Syntax(nested=True, dollar=True)
_PG = (POSTGRESQL, Syntax(backslash=True, nested=True, dollar=True))
_MYSQL = (
    Syntax(backslash=True, dquote_backslash=True, mysql=True),
    Syntax(mysql=True),  # sql_mode NO_BACKSLASH_ESCAPES
    Syntax(backslash=True, mysql=True),  # ANSI_QUOTES: "..." is an identifier
)
_SYNTAXES: dict[str, tuple[Syntax, ...]] = {
    "postgresql": _PG,
    "mysql": _MYSQL,
    "mariadb": _MYSQL,
    "sqlite": (Syntax(),),
}
# Another dialect: every reading above, so that no statement hides from all of them.
_ANY = (*_PG, *_MYSQL, Syntax(dollar=True), Syntax(backslash=True, dollar=True))


def readings(sql: str, dialect: str = "") -> list[Syntax]:
    """Every reading of ``sql`` that ``dialect`` (a SQLAlchemy dialect name or Django
    vendor) allows, one per distinct outcome; an unknown dialect gets all of them."""
    backslashes = "\\" in sql
    seen: set[tuple[bool, ...]] = set()
    found: list[Syntax] = []
    for syntax in _SYNTAXES.get(dialect, _ANY):
        key = syntax.key(backslashes)
        if key not in seen:
            seen.add(key)
            found.append(syntax)
    return found


_QUOTED = {
    (q, backslash): re.compile(
        f"{q}[^{q}\\\\]*(?:(?:{q}{q}|\\\\.)[^{q}\\\\]*)*{q}"
        if backslash
        else f"{q}[^{q}]*(?:{q}{q}[^{q}]*)*{q}",
        re.S,
    )
    for q in "'\"`"
    for backslash in (False, True)
}


def _quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    """Index just past the quoted token starting at ``sql[i]`` (its end if unterminated)."""
    m = _QUOTED[quote, backslash].match(sql, i)
    return len(sql) if m is None else m.end()


def _pieces(sql: str, syntax: Syntax) -> Iterator[tuple[str, int, int]]:
    """``(kind, start, end)`` pieces covering ``sql``: ``code`` (plain text), ``;``,
    ``blank`` (a comment, or a marker of MySQL's ``/*! */``), ``string`` (a literal, a
    dollar body, SQLite's ``[name]``) and ``name`` (``"..."`` or ``` `...` ```)."""
    i, n = 0, len(sql)
    while i < n:
        m = syntax.special.search(sql, i)
        if m is None:
            yield "code", i, n
            return
        if m.start() > i:
            yield "code", i, m.start()
        i = start = m.start()
        token = m.group()
        if token == ";":
            i += 1
            yield ";", start, i
            continue
        kind = "blank"
        if token in ("--", "#"):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif token == "/*":
            if syntax.mysql and (sql.startswith("!", i + 2) or sql.startswith("M!", i + 2)):
                # MySQL runs the text of /*! ... */: it is code, only the markers go
                i += 3 if sql[i + 2] == "!" else 4
                while i < n and sql[i].isdigit():
                    i += 1
            elif syntax.nested:
                depth, i = 1, i + 2
                while depth and i < n:
                    if sql.startswith("*/", i):
                        depth -= 1
                        i += 2
                    elif sql.startswith("/*", i):
                        depth += 1
                        i += 2
                    else:
                        i += 1
            else:
                end = sql.find("*/", i + 2)
                i = n if end < 0 else end + 2
        elif token == "*/":
            i += 2  # the end of a MySQL /*! ... */
        elif token == "'":
            escape = syntax.backslash or (
                syntax.dollar
                and i > 0
                and sql[i - 1] in "eE"
                and not (i > 1 and (sql[i - 2].isalnum() or sql[i - 2] in "_$"))
            )
            i, kind = _quoted(sql, i, "'", escape), "string"
        elif token in ('"', "`"):
            i = _quoted(sql, i, token, syntax.dquote_backslash and token == '"')
            kind = "name"
        elif token == "[":
            end = sql.find("]", i)
            i, kind = (n if end < 0 else end + 1), "string"
        else:  # a dollar-quote tag
            end = sql.find(token, i + len(token))
            i, kind = (n if end < 0 else end + len(token)), "string"
        yield kind, start, i


def split(sql: str, syntax: Syntax = POSTGRESQL) -> list[str]:
    """The statements of ``sql`` as written, stripped; empty ones (only blanks or
    comments) left out."""
    statements: list[str] = []
    start = 0
    has_token = False
    for kind, begin, end in _pieces(sql, syntax):
        if kind == ";":
            if has_token:
                statements.append(sql[start:begin].strip())
            start, has_token = end, False
        elif kind != "blank" and (kind != "code" or not sql[begin:end].isspace()):
            has_token = True
    if has_token:
        statements.append(sql[start:].strip())
    return statements


def code(sql: str, syntax: Syntax = POSTGRESQL) -> list[str]:
    """The statements of ``sql`` with comments blanked out and literals emptied.

    A quoted identifier that is a plain word keeps its text (``"setval"(...)`` is still a
    call of setval); other quoted tokens become ``''``.
    """
    statements: list[str] = []
    out: list[str] = []
    for kind, begin, end in _pieces(sql, syntax):
        if kind == "code":
            out.append(sql[begin:end])
        elif kind == ";":
            statements.append("".join(out))
            out = []
        elif kind == "name":
            inner = sql[begin + 1 : end - 1]
            out.append(inner if _IDENT.match(inner) else "''")
        elif kind == "string":
            out.append("''")
        else:
            out.append(" ")
    statements.append("".join(out))
    return [s for s in statements if s.strip()]


def _tokens(sql: str, syntax: Syntax) -> list[tuple[int, int, str]]:
    """``(start, end, kind)`` of every token outside comments; kind is ``word``, ``;``,
    ``quoted`` (a string, identifier or dollar body) or ``other``."""
    found: list[tuple[int, int, str]] = []
    for kind, begin, end in _pieces(sql, syntax):
        if kind == "code":
            for m in _TOKEN.finditer(sql, begin, end):
                if not m.group().isspace():
                    word = _WORD.fullmatch(m.group()) is not None
                    found.append((m.start(), m.end(), "word" if word else "other"))
        elif kind in ("string", "name"):
            prefix = found[-1] if found and found[-1][1] == begin else None
            if prefix and sql[begin] == "'" and sql[prefix[0] : begin] in ("E", "e"):
                begin = found.pop()[0]  # E'...': one string
            found.append((begin, end, "quoted"))
        elif kind == ";":
            found.append((begin, end, ";"))
    return found


def last_name(statement: str, syntax: Syntax = POSTGRESQL) -> str | None:
    """The name that ends ``statement`` (``RELEASE SAVEPOINT s1``) as the server resolves
    it: unquoted folded to lower case, quoted taken as written; None when the last token
    is anything else (a ``U&"..."`` name with escapes, a string, punctuation)."""
    found = _tokens(statement, syntax)
    if not found:
        return None
    begin, end, kind = found[-1]
    text = statement[begin:end]
    if kind == "word":
        return text.lower()
    after_ampersand = len(found) > 1 and statement[found[-2][0] : found[-2][1]] == "&"
    if kind == "quoted" and text[0] == '"' and len(text) > 1 and text[-1] == '"':
        return None if after_ampersand else text[1:-1].replace('""', '"')
    return None


def keywords(statement: str, count: int = 3, syntax: Syntax = POSTGRESQL) -> list[str]:
    """The first ``count`` bare words of ``statement``, upper-cased; leading ``(`` skipped.

    Stops at the first token that is not a word (a quoted name, a number, punctuation).
    """
    words: list[str] = []
    for begin, end, kind in _tokens(statement, syntax):
        if kind == "word":
            words.append(statement[begin:end].upper())
            if len(words) == count:
                break
        elif not (kind == "other" and statement[begin] == "(" and not words):
            break
    return words
