"""The SQLite sink: one file in WAL mode that every process of one machine writes at once.

WAL lets readers (``shadowguard compare``) read while writers write, and a writer that
finds the file locked by another process's transaction waits up to :data:`BUSY_TIMEOUT_MS`
instead of failing. Each batch is one ``BEGIN IMMEDIATE`` transaction: the write lock is
taken up front (no deadlock between two writers upgrading read locks), and a batch is
stored whole or not at all. Not for a network file system: WAL needs shared memory.

Table ``shadowguard_capture``: ``id`` (insertion order), ``request_id``, ``label``,
``started_at`` and ``record`` (:func:`~shadowguard.capture_format.encode`'s JSON text),
indexed by ``(request_id, label)`` and by ``label``.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from shadowguard.capture._sinks import Encoded

__all__ = ["BUSY_TIMEOUT_MS", "TABLE", "SqliteSink"]

TABLE = "shadowguard_capture"
#: How long a write waits for another process's transaction on the same file.
BUSY_TIMEOUT_MS = 10_000
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    "id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, label TEXT NOT NULL, "
    "started_at REAL NOT NULL, record TEXT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_request ON {TABLE} (request_id, label)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_label ON {TABLE} (label)",
)
_INSERT = f"INSERT INTO {TABLE} (request_id, label, started_at, record) VALUES (?, ?, ?, ?)"

# Taken at import: a test harness that wraps sqlite3.connect to watch what shadow code
# opens (shadowguard's own pytest plugin does) must not mistake the capture file for the
# application's database.
_connect = sqlite3.connect

T = TypeVar("T")


class SqliteSink:
    """Append records to a SQLite file (created with its directory if missing)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"<shadowguard.capture.SqliteSink {self.path!r}>"

    def _open(self) -> sqlite3.Connection:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        # isolation_level=None: the module starts no transaction of its own; ours are explicit.
        connection = _connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # Two processes creating the file at once: the loser of the journal-mode switch
            # may see SQLITE_BUSY before the busy handler applies; it retries.
            _retry(lambda: connection.execute("PRAGMA journal_mode = WAL").fetchone())
            connection.execute("PRAGMA synchronous = NORMAL")
            for statement in _SCHEMA:
                _retry(functools.partial(connection.execute, statement))
        except BaseException:
            connection.close()
            raise
        return connection

    def write(self, batch: Sequence[Encoded]) -> None:
        """Insert ``batch`` in one transaction."""
        connection = self._connection
        if connection is None:
            connection = self._connection = self._open()
        rows = [
            (r.record["request_id"], r.record["label"], r.record["started_at"], r.text)
            for r in batch
        ]
        _retry(lambda: connection.execute("BEGIN IMMEDIATE"))
        try:
            connection.executemany(_INSERT, rows)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _retry(call: Callable[[], T], attempts: int = 5) -> T:
    """Run ``call``, again after a short pause while SQLite says the file is busy."""
    for attempt in range(attempts):
        try:
            return call()
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if attempt == attempts - 1 or ("locked" not in message and "busy" not in message):
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")
