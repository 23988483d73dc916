"""A small SQL lexer for guards: split a string into statements, read leading keywords.

It follows PostgreSQL's lexical rules (``'...'`` with ``''``, ``E'...'`` with backslash
escapes, ``"..."`` identifiers, ``$tag$...$tag$`` bodies, ``--`` and nested ``/* */``
comments). Where it could misjudge (an unterminated quote, a dialect's own escapes) it
errs towards seeing more statements, never fewer, so a guard refusing multi-statement SQL
fails closed. The database drivers the integrations cover refuse or reject the rest.
"""

from __future__ import annotations

import re

__all__ = ["keywords", "last_name", "split"]

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")


def _skip_block_comment(sql: str, i: int) -> int:
    """``sql[i:i+2] == "/*"``; the index after its (nested) end, or ``len(sql)``."""
    depth = 0
    n = len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _skip_quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    """``sql[i] == quote``; the index after the closing quote (a doubled quote escapes)."""
    n = len(sql)
    i += 1
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _tokens(sql: str) -> list[tuple[int, int, str]]:
    """``(start, end, kind)`` of every token outside comments; kind is ``word``, ``;``,
    ``quoted`` (a string, identifier or dollar body) or ``other``."""
    found: list[tuple[int, int, str]] = []
    i = 0
    n = len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif c == "'":
            end = _skip_quoted(sql, i, "'", backslash=False)
            found.append((i, end, "quoted"))
            i = end
        elif c == '"':
            end = _skip_quoted(sql, i, '"', backslash=False)
            found.append((i, end, "quoted"))
            i = end
        elif c == "$":
            tag = _DOLLAR_TAG.match(sql, i)
            if tag is None:
                found.append((i, i + 1, "other"))
                i += 1
                continue
            close = sql.find(tag.group(0), tag.end())
            end = n if close < 0 else close + len(tag.group(0))
            found.append((i, end, "quoted"))
            i = end
        elif c == ";":
            found.append((i, i + 1, ";"))
            i += 1
        else:
            word = _WORD.match(sql, i)
            if word is None:
                found.append((i, i + 1, "other"))
                i += 1
                continue
            end = word.end()
            if word.group(0) in ("E", "e") and end < n and sql[end] == "'":
                end = _skip_quoted(sql, end, "'", backslash=True)
                found.append((i, end, "quoted"))
            else:
                found.append((i, end, "word"))
            i = end
    return found


def split(sql: str) -> list[str]:
    """The statements of ``sql``, stripped; empty ones (only blanks or comments) left out."""
    statements: list[str] = []
    start = 0
    has_token = False
    for begin, end, kind in _tokens(sql):
        if kind == ";":
            if has_token:
                statements.append(sql[start:begin].strip())
            start, has_token = end, False
        else:
            has_token = True
    if has_token:
        statements.append(sql[start:].strip())
    return statements


def last_name(statement: str) -> str | None:
    """The name that ends ``statement`` (``RELEASE SAVEPOINT s1``) as the server resolves
    it: unquoted folded to lower case, quoted taken as written; None when the last token
    is anything else (a ``U&"..."`` name with escapes, a string, punctuation)."""
    found = _tokens(statement)
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


def keywords(statement: str, count: int = 3) -> list[str]:
    """The first ``count`` bare words of ``statement``, upper-cased; leading ``(`` skipped.

    Stops at the first token that is not a word (a quoted name, a number, punctuation).
    """
    words: list[str] = []
    for begin, end, kind in _tokens(statement):
        if kind == "word":
            words.append(statement[begin:end].upper())
            if len(words) == count:
                break
        elif not (kind == "other" and statement[begin] == "(" and not words):
            break
    return words
