"""The SQL statement classifier every database guard uses: read, write, or refused in shadow.

:func:`classify` judges a SQL string in every reading its dialect allows
(:mod:`shadowguard._sql`) and returns the kind of its most dangerous statement: whether a
rollback undoes it (``write``), the pool's clean-up undoes it (``session``), or nothing
does (``refuse``: DDL, transaction control in text, non-transactional functions, and on
MySQL/MariaDB every statement that commits the open transaction first).
"""

from __future__ import annotations

import re

from shadowguard import _sql

__all__ = [
    "AUTOCOMMIT_OK",
    "MYSQL_DIALECTS",
    "READ",
    "REFUSE",
    "SESSION",
    "TXN",
    "UNKNOWN",
    "WRITE",
    "classify",
    "rank",
]

# Statement kinds, from harmless to never allowed (a string of several statements takes
# the kind of its most dangerous one).
READ = "read"  # reads: allowed everywhere
TXN = "transaction"  # savepoints, BEGIN, ROLLBACK, SET CONSTRAINTS...: harmless
SESSION = "session"  # session state, undone when the connection returns to the pool
WRITE = "write"  # undone by the rollback; refused on an autocommit connection
UNKNOWN = "unknown"  # treated as a write
REFUSE = "refuse"  # never in shadow
_RANK = {READ: 0, TXN: 1, SESSION: 2, WRITE: 3, UNKNOWN: 4, REFUSE: 5}

AUTOCOMMIT_OK = frozenset({READ, SESSION, TXN})
_LEADING = re.compile(r"[\s(]+")
_WORD = re.compile(r"[A-Za-z_]+")
# SQLite's WITH ... REPLACE INTO writes; replace() the function does not.
_DML = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE)\b|\bREPLACE\s+INTO\b", re.I)
_INTO = re.compile(r"\bINTO\b", re.I)
_DDL = frozenset(
    {
        *("CREATE", "ALTER", "DROP", "TRUNCATE", "COMMENT", "GRANT", "REVOKE", "REINDEX"),
        *("CLUSTER", "VACUUM", "ANALYZE", "REFRESH", "SECURITY", "IMPORT", "ATTACH"),
        *("DETACH", "COPY"),
    }
)
_WRITES_KW = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE", "NOTIFY"})
_READS_KW = frozenset({"SELECT", "SHOW", "VALUES", "TABLE", "FETCH"})
_SESSION_KW = frozenset({"SET", "RESET", "LISTEN", "UNLISTEN", "CLOSE"})
# They destroy state the primary owns on a pooled connection (its temporary tables, the
# driver's prepared statements), which no rollback or clean-up can give back.
_DESTRUCTIVE = frozenset({"DISCARD", "DEALLOCATE"})
_TXN_KW = frozenset({"BEGIN", "START", "SAVEPOINT", "RELEASE", "ROLLBACK", "ABORT", "LOCK"})
# EXPLAIN runs the statement it explains when asked to analyse it, in any spelling or form:
# EXPLAIN ANALYSE ..., EXPLAIN (ANALYZE, FORMAT JSON) ..., EXPLAIN (ANALYSE true) ...
# (MySQL 8's EXPLAIN ANALYZE too). Whatever precedes the statement is skipped: an option list
# in parentheses, then option words and MySQL's FORMAT=... and FOR CONNECTION n.
_EXPLAIN_HEAD = re.compile(
    r"^[A-Za-z]+\s*(?:\((?:[^()]|\([^()]*\))*\)\s*)?"
    r"(?:(?:ANALY[SZ]E|VERBOSE|EXTENDED|PARTITIONS|FORMAT\s*=\s*\w+|QUERY\s+PLAN)\b\s*)*",
    re.I,
)
_ANALYSE = re.compile(r"\bANALY[SZ]E\b", re.I)
_ROLLBACK_TO = re.compile(r"ROLLBACK\s+(?:WORK\s+|TRANSACTION\s+)?TO\b", re.I)
# MySQL and MariaDB commit the open transaction before these (and DDL): the shadow's
# writes would persist. Also statements that change the server, not the session.
MYSQL_DIALECTS = frozenset({"mysql", "mariadb"})
_MYSQL_COMMITS = frozenset(
    {
        *("BEGIN", "START", "LOCK", "UNLOCK", "RENAME", "XA", "FLUSH", "RESET", "OPTIMIZE"),
        *("REPAIR", "CHECK", "CACHE", "LOAD", "INSTALL", "UNINSTALL", "CHANGE", "STOP"),
        *("PURGE", "KILL", "SHUTDOWN"),
    }
)
_MYSQL_SET = re.compile(
    r"^SET\s+(?:(?:GLOBAL|PERSIST|PERSIST_ONLY|PASSWORD)\b|@@(?:GLOBAL|PERSIST)|"
    r"(?:(?:SESSION|LOCAL)\s+|@@(?:SESSION\.|LOCAL\.)?)?AUTOCOMMIT\b)",
    re.I,
)
_MYSQL_SET_AUTOCOMMIT = re.compile(
    r"(?:^SET\s|,)\s*(?:SESSION\s+|LOCAL\s+|@@\w*\.?)?AUTOCOMMIT\b", re.I
)
# Functions whose effect no rollback undoes: they are refused in shadow. nextval() is not
# among them: an id drawn in shadow is a gap for the primary, never a duplicate.
_NON_TRANSACTIONAL = re.compile(
    r"\b(setval|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile"
    r"|pg_switch_wal|pg_create_restore_point|pg_promote|pg_logical_emit_message"
    r"|pg_\w*replication_slot\w*|pg_stat_reset\w*|pg_file_\w+|dblink\w*"
    r"|lo_import|lo_export)\"?\s*\(",
    re.I,
)
# Functions that write like an INSERT (undone by the rollback, refused on autocommit).
_WRITING = re.compile(
    r"\b(pg_notify|lo_create|lo_creat|lo_unlink|lo_put|lo_from_bytea|lowrite|lo_truncate\w*)"
    r"\"?\s*\(",
    re.I,
)


# Every function name above contains one of these: most statements skip both searches.
_FUNCTION_HINTS = ("setval", "pg_", "dblink", "lo_", "lowrite")


def classify(statement: str, dialect: str = "") -> tuple[str, str]:
    """Classify a SQL string for shadow traffic: ``(kind, verb)``.

    ``kind`` is one of ``read``, ``session``, ``transaction``, ``write``, ``unknown``
    and ``refuse``; ``verb`` names the statement in messages. A string of several
    statements is split (quotes, dollar quotes and comments respected, in every reading
    the dialect allows) and takes the kind of its most dangerous statement.
    """
    worst = (UNKNOWN, "an empty statement")
    seen = False
    lowered = statement.lower()
    functions = any(hint in lowered for hint in _FUNCTION_HINTS)
    for syntax in _sql.readings(statement, dialect):
        parts = _sql.code(statement, syntax)
        for part in parts:
            found = _classify_one(part, dialect, len(parts) > 1, functions)
            if not seen or _RANK[found[0]] > _RANK[worst[0]]:
                worst, seen = found, True
    # Also in the raw text: the body of a DO block or a function is a literal.
    if not functions:
        return worst
    m = _NON_TRANSACTIONAL.search(statement)
    if m is not None:
        return REFUSE, f"{m.group(1).lower()}()"
    m = _WRITING.search(statement)
    if m is not None and _RANK[worst[0]] < _RANK[WRITE]:
        return WRITE, f"{m.group(1).lower()}()"
    return worst


def _classify_one(text: str, dialect: str, several: bool, functions: bool) -> tuple[str, str]:
    """Classify one statement, comments blanked and literals emptied by :func:`shadowguard._sql.code`."""
    head = _LEADING.match(text)
    text = text[head.end() if head else 0 :]
    m = _NON_TRANSACTIONAL.search(text) if functions else None
    if m is not None:
        return REFUSE, f"{m.group(1).lower()}()"
    kind, verb = _kind(text, dialect)
    # "ROLLBACK; INSERT ...": the rest of the string runs in a transaction of its own,
    # committed when the string ends.
    if (
        several
        and verb in ("BEGIN", "START", "ROLLBACK", "ABORT")
        and kind != REFUSE
        and not _ROLLBACK_TO.match(text)
    ):
        return REFUSE, f"{verb} in a string of several statements"
    if functions and _RANK[kind] < _RANK[WRITE]:
        m = _WRITING.search(text)
        if m is not None:
            return WRITE, f"{m.group(1).lower()}()"
    return kind, verb


def _kind(text: str, dialect: str) -> tuple[str, str]:
    words = _WORD.findall(text[:200])[:4]
    if not words:
        return UNKNOWN, "an empty statement"
    w = [x.upper() for x in words] + ["", "", ""]
    verb = w[0]
    if verb in ("COMMIT", "END") or (verb == "PREPARE" and w[1] == "TRANSACTION"):
        return REFUSE, " ".join(x for x in w[:2] if x)
    if verb == "ROLLBACK" and w[1] == "PREPARED":
        return REFUSE, "ROLLBACK PREPARED"
    if verb in _DESTRUCTIVE:
        return REFUSE, verb
    if dialect in MYSQL_DIALECTS:
        if verb in _MYSQL_COMMITS:
            return REFUSE, f"{verb} (MySQL commits the open transaction first)"
        if verb == "SET" and (_MYSQL_SET.match(text) or _MYSQL_SET_AUTOCOMMIT.search(text)):
            return REFUSE, "SET " + " ".join(x for x in w[1:3] if x)
    if verb in _DDL:
        if (
            verb == "CREATE"
            and dialect == "postgresql"
            and w[1] in ("TEMP", "TEMPORARY")
            and w[2] == "TABLE"
        ):
            return SESSION, "CREATE TEMPORARY TABLE"
        return REFUSE, verb
    if verb == "SELECT":
        # SELECT ... INTO creates a table.
        return (REFUSE, "SELECT INTO") if _INTO.search(text) else (READ, verb)
    if verb in _READS_KW:
        return READ, verb
    if verb == "EXPLAIN":
        return _explain(text, dialect, verb)
    if verb == "WITH":
        return (WRITE, "WITH") if _DML.search(text) else (READ, verb)
    if verb in _WRITES_KW:
        return WRITE, verb
    if verb == "PRAGMA":
        return (REFUSE, "PRAGMA assignment") if "=" in text else (READ, verb)
    if verb in _SESSION_KW:
        return (TXN, verb) if w[1] in ("LOCAL", "CONSTRAINTS", "TRANSACTION") else (SESSION, verb)
    if verb in _TXN_KW:
        return TXN, verb
    return UNKNOWN, verb


def rank(kind: str) -> int:
    """How dangerous a kind is, from ``read`` (0) to ``refuse`` (5)."""
    return _RANK[kind]


def _explain(text: str, dialect: str, verb: str) -> tuple[str, str]:
    """EXPLAIN reads, unless it analyses: then it runs its statement, judged as such."""
    if not _ANALYSE.search(text):
        return READ, verb
    head = _EXPLAIN_HEAD.match(text)
    inner = text[head.end() if head else len(verb) :]
    kind, inner_verb = _kind(inner, dialect) if inner.strip() else (UNKNOWN, "")
    # Erring towards seeing a write: the statement runs, and a misread of it must not pass.
    if _RANK[kind] < _RANK[WRITE]:
        kind = WRITE
    return kind, f"EXPLAIN ANALYZE {inner_verb}".rstrip()
