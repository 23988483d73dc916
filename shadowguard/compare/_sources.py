"""Reading stored capture records: a SQLite file or a folder of JSON-lines files.

A source is written as the capture setting is (``sqlite:///path``, ``jsonl:///dir``, the path
absolute as in a ``file:`` URL: ``sqlite:///var/capture.db`` is ``/var/capture.db``) or
as a plain path: a folder or a ``.jsonl`` file is JSON lines, any other file must be SQLite.

Readers are tolerant: a record that cannot be read is skipped and counted under its reason
(not JSON, invalid, an unknown schema version, a truncated last line, too large), with the
first place it happened; only a source that cannot be opened at all is an error
(:class:`CompareError`).
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote

from shadowguard.capture import TABLE
from shadowguard.capture._settings import parse_url
from shadowguard.capture_format import CaptureRecord, RecordError, decode
from shadowguard.compare._errors import CompareError
from shadowguard.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "Skips",
    "Source",
    "SourceStats",
    "open_source",
    "read_record",
]

#: Records larger than this are skipped (and counted): a runaway body must not exhaust memory.
DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024
_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass
class SourceStats:
    """What one source gave: records read, and records skipped by reason (first place each)."""

    source: str
    records: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] += 1
        self.first.setdefault(reason, where)


def _reason(exc: RecordError) -> str:
    message = str(exc)
    if message.startswith("unknown schema version"):
        return message.split(" (", 1)[0]
    if message.startswith("not JSON") or message.startswith("not a JSON object"):
        return "not JSON"
    return "invalid record"


class Skips(Protocol):
    """Where unreadable records are counted (:class:`SourceStats`, a worker's partial)."""

    def skip(self, reason: str, where: str) -> None: ...


def read_record(
    raw: str | bytes, stats: Skips, where: str, last: bool = False
) -> CaptureRecord | None:
    """The record stored as ``raw``, or None after counting why it cannot be read."""
    try:
        record = decode(raw)
    except RecordError as exc:
        reason = _reason(exc)
        # A last line without its newline is one still being written, or cut off by a crash.
        stats.skip(
            "truncated last line" if last and reason == "not JSON" else reason, f"{where}: {exc}"
        )
    except RecursionError:
        stats.skip("nested too deeply", where)
    except (TypeError, ValueError, AttributeError) as exc:
        # decode() lets a few malformed optional fields through as these (body_bytes "x",
        # suppressions as a list): still one bad record, not a failed run.
        stats.skip("invalid record", f"{where}: {type(exc).__name__}: {exc}")
    else:
        if math.isfinite(record["started_at"]) and math.isfinite(record["duration_ms"]):
            return record
        stats.skip("invalid record", f"{where}: started_at or duration_ms is not finite")
    return None


@dataclass
class Source:
    """One opened source; iterate :meth:`records` once."""

    spec: str
    kind: str
    path: Path
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    stats: SourceStats = field(init=False)

    def __post_init__(self) -> None:
        self.stats = SourceStats(self.spec)

    def records(self) -> Iterator[CaptureRecord]:
        """The readable records, in stored order; the rest is counted in :attr:`stats`."""
        reader = self._sqlite if self.kind == "sqlite" else self._jsonl
        for record in reader():
            self.stats.records += 1
            yield record

    def _jsonl(self) -> Iterator[CaptureRecord]:
        files = sorted(self.path.glob("*.jsonl")) if self.path.is_dir() else [self.path]
        for path in files:
            try:
                handle = path.open("rb")
            except OSError as exc:
                raise CompareError(
                    f"source {self.spec!r}: cannot read {path}: {exc.strerror}"
                ) from None
            with handle:
                yield from self._lines(handle, path.name)

    def _lines(self, handle: BinaryIO, name: str) -> Iterator[CaptureRecord]:
        limit = self.max_record_bytes
        number = 0
        while True:
            line = handle.readline(limit + 1)
            if not line:
                return
            number += 1
            where = f"{name}:{number}"
            if len(line) > limit and not line.endswith(b"\n"):
                while (rest := handle.readline(1 << 20)) and not rest.endswith(b"\n"):
                    pass
                self.stats.skip(f"record over {limit} bytes", where)
                continue
            if not line.strip():
                continue
            record = read_record(line, self.stats, where, last=not line.endswith(b"\n"))
            if record is not None:
                yield record

    def _sqlite(self) -> Iterator[CaptureRecord]:
        connection = _connect(self.spec, self.path)
        try:
            size = "length(CAST(record AS BLOB))"
            query = f"SELECT {size}, CASE WHEN {size} > ? THEN NULL ELSE record END FROM {TABLE}"
            try:
                cursor = connection.execute(query, (self.max_record_bytes,))
            except sqlite3.DatabaseError as exc:
                raise CompareError(
                    f"source {self.spec!r}: cannot read table {TABLE}: {exc}"
                ) from None
            number = 0
            while True:
                try:
                    # One row at a time: a batch that meets a damaged page loses its good rows.
                    row = cursor.fetchone()
                except sqlite3.DatabaseError as exc:
                    # A damaged page: keep what was read, say where it stopped.
                    self.stats.skip("rest of the table unreadable", f"after row {number}: {exc}")
                    return
                if row is None:
                    return
                number += 1
                length, raw = row
                where = f"row {number}"
                if raw is None:
                    if length is None:
                        self.stats.skip("invalid record", f"{where}: record is NULL")
                    else:
                        self.stats.skip(f"record over {self.max_record_bytes} bytes", where)
                    continue
                record = read_record(raw, self.stats, where)
                if record is not None:
                    yield record
        finally:
            connection.close()


def _connect(spec: str, path: Path) -> sqlite3.Connection:
    """Open read-only; a WAL file whose writer has gone may need a writable open to be read."""
    problem = ""
    for uri in (f"file:{quote(str(path))}?mode=ro", f"file:{quote(str(path))}"):
        connection = sqlite3.connect(uri, uri=True)
        try:
            columns = {row[1] for row in connection.execute(f"PRAGMA table_info({TABLE})")}
        except sqlite3.DatabaseError as exc:
            connection.close()
            problem = str(exc)
            continue
        if "record" not in columns:
            connection.close()
            what = "no column 'record' in" if columns else "no"
            raise CompareError(
                f"source {spec!r}: {what} table {TABLE!r}: not a shadowguard capture database"
            )
        return connection
    raise CompareError(f"source {spec!r}: not a readable SQLite database ({problem})")


def _path_of(spec: str) -> tuple[str | None, Path]:
    if "://" in spec:
        try:
            scheme, path = parse_url(spec, "source")
        except ConfigError:
            scheme = spec.split("://", 1)[0]
            what = (
                "an invalid URL" if scheme in ("sqlite", "jsonl") else f"unknown scheme {scheme!r}"
            )
            raise CompareError(
                f"source {spec!r}: {what}; accepted: sqlite:///PATH, jsonl:///DIR (the path "
                "absolute, as SHADOWGUARD_CAPTURE writes it), or a path"
            ) from None
        return scheme, Path(path)
    return None, Path(spec)


def open_source(spec: str, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Source:
    """Check that ``spec`` names something readable and of which kind; nothing is read yet."""
    scheme, path = _path_of(spec)
    if not path.exists():
        raise CompareError(f"source {spec!r}: no such file or folder: {path}")
    if scheme == "jsonl" or (scheme is None and (path.is_dir() or path.suffix == ".jsonl")):
        if path.is_dir() and not any(path.glob("*.jsonl")):
            raise CompareError(f"source {spec!r}: no *.jsonl file in {path}")
        return Source(spec, "jsonl", path, max_record_bytes)
    if path.is_dir():
        raise CompareError(f"source {spec!r}: {path} is a folder, not a SQLite file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise CompareError(f"source {spec!r}: cannot read {path}: {exc.strerror}") from None
    if magic != _SQLITE_MAGIC and (scheme == "sqlite" or path.stat().st_size):
        raise CompareError(
            f"source {spec!r}: {path} is not a SQLite database (write jsonl:///{path} for "
            "JSON lines)"
        )
    return Source(spec, "sqlite", path, max_record_bytes)
