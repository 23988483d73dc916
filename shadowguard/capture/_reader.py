"""Reading captured records back: ``read_records(url)`` for either sink.

Records come in the order each file (or the SQLite table) holds them. A record that
cannot be decoded (a corrupt or truncated line, an unknown schema version) is skipped and
reported to ``on_error`` with where it was; by default it is logged as a warning.
"""

from __future__ import annotations

import glob
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator

from shadowguard.capture._settings import parse_url
from shadowguard.capture._sqlite import TABLE
from shadowguard.capture_format import CaptureRecord, RecordError, decode
from shadowguard.errors import ConfigError

__all__ = ["OnError", "read_records"]

logger = logging.getLogger("shadowguard.capture")

#: Called with where a bad record is (``FILE:LINE``, ``FILE#ROWID``) and what is wrong.
OnError = Callable[[str, RecordError], None]

_SQLITE_MAGIC = b"SQLite format 3\x00"


def _log(where: str, error: RecordError) -> None:
    logger.warning("shadowguard: skipped capture record at %s: %s", where, error)


def read_records(
    source: str | os.PathLike[str], *, on_error: OnError | None = None
) -> Iterator[CaptureRecord]:
    """Yield the records of a capture URL (``sqlite:///...``, ``jsonl:///...``) or path.

    A path is read by what it is: a directory as JSON lines (every ``*.jsonl`` in it), a
    SQLite file as SQLite, any other file as one JSON lines file. Raises
    :class:`~shadowguard.ConfigError` for a malformed URL and ``FileNotFoundError`` when
    there is nothing at the place named.
    """
    report = on_error or _log
    text = os.fspath(source)
    if "://" in text:
        scheme, path = parse_url(text, "capture source")
        if scheme == "kafka":
            raise ConfigError(
                f"capture source {text!r}: read_records reads sqlite:// and jsonl:// captures; "
                "a kafka:// capture is read by consuming its topic"
            )
    else:
        path = os.path.abspath(text)
        if os.path.isdir(path):
            scheme = "jsonl"
        else:
            with open(path, "rb") as probe:
                scheme = "sqlite" if probe.read(16) == _SQLITE_MAGIC else "jsonl-file"
    if scheme == "sqlite":
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no capture file at {path}")
        return _read_sqlite(path, report)
    if scheme == "jsonl":
        if not os.path.isdir(path):
            raise FileNotFoundError(f"no capture directory at {path}")
        files = sorted(glob.glob(os.path.join(glob.escape(path), "*.jsonl")))
        return _read_lines(files, report)
    return _read_lines([path], report)


def _read_lines(files: list[str], report: OnError) -> Iterator[CaptureRecord]:
    for name in files:
        with open(name, "rb") as file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    if not line.endswith(b"\n"):
                        raise RecordError("incomplete last line (the writer was stopped mid-write)")
                    record = decode(line)
                except RecordError as exc:
                    report(f"{name}:{number}", exc)
                    continue
                yield record


def _read_sqlite(path: str, report: OnError) -> Iterator[CaptureRecord]:
    connection = sqlite3.connect(path)
    try:
        try:
            rows = connection.execute(f"SELECT id, record FROM {TABLE} ORDER BY id")
        except sqlite3.DatabaseError as exc:
            raise RecordError(f"{path} is not a shadowguard capture file: {exc}") from None
        for rowid, text in rows:
            try:
                record = decode(text if isinstance(text, (str, bytes)) else str(text))
            except RecordError as exc:
                report(f"{path}#{rowid}", exc)
                continue
            yield record
    finally:
        connection.close()
