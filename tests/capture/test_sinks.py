"""The sinks on disk and reading them back: SQLite in WAL mode, JSON lines, bad records."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from shadowguard import ConfigError, capture
from shadowguard.capture import TABLE, read_records
from shadowguard.capture._jsonl import JsonlSink
from shadowguard.capture._sinks import Encoded
from shadowguard.capture._sqlite import SqliteSink
from shadowguard.capture_format import CaptureRecord, RecordError, encode
from shadowguard.middleware.asgi import ShadowGuardMiddleware
from tests.capture._support import drive, json_app, records
from tests.compare._records import record as valid_record


def record(request_id: str, label: str = "primary") -> CaptureRecord:
    """A valid record whose body is not all ASCII."""
    return valid_record(request_id, label, body={"ok": True, "text": "caf\u00e9 \u2603"})


def encoded(*records: CaptureRecord) -> list[Encoded]:
    return [Encoded(r, encode(r)) for r in records]


def test_sqlite_file_layout(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "capture.db"
    sink = SqliteSink(str(path))
    sink.write(encoded(record("a"), record("a", "shadow")))
    sink.write(encoded(record("b")))
    sink.close()
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        indexes = {row[1]: row for row in connection.execute(f"PRAGMA index_list({TABLE})")}
        columns = {
            name: [c[2] for c in connection.execute(f"PRAGMA index_info({name})")]
            for name in indexes
        }
        assert columns == {
            f"{TABLE}_request": ["request_id", "label"],
            f"{TABLE}_label": ["label"],
        }
        rows = connection.execute(f"SELECT request_id, label, record FROM {TABLE} ORDER BY id")
        assert [(r[0], r[1], json.loads(r[2])["label"]) for r in rows] == [
            ("a", "primary", "primary"),
            ("a", "shadow", "shadow"),
            ("b", "primary", "primary"),
        ]
    finally:
        connection.close()
    assert [r["request_id"] for r in read_records(f"sqlite://{path}")] == ["a", "a", "b"]
    assert next(r["body"] for r in read_records(path)) == {"ok": True, "text": "caf\u00e9 \u2603"}


def test_jsonl_files_per_process_and_label(tmp_path: Path) -> None:
    sink = JsonlSink(str(tmp_path))
    sink.write(encoded(record("a"), record("a", "candidate"), record("b")))
    sink.close()
    pid = os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"candidate-{pid}.jsonl",
        f"primary-{pid}.jsonl",
    ]
    lines = (tmp_path / f"primary-{pid}.jsonl").read_bytes().splitlines(keepends=True)
    assert len(lines) == 2
    assert all(line.endswith(b"\n") for line in lines)
    assert [r["request_id"] for r in read_records(tmp_path)] == ["a", "a", "b"]


def test_a_partial_last_line_stays_one_corrupt_line(tmp_path: Path) -> None:
    """A process killed mid-write, then a new one with the same pid (a container)."""
    name = tmp_path / f"primary-{os.getpid()}.jsonl"
    name.write_bytes(encode(record("whole")).encode() + b"\n" + b'{"v": 1, "request_id": "cut')
    sink = JsonlSink(str(tmp_path))
    sink.write(encoded(record("after")))
    sink.close()
    errors: list[tuple[str, RecordError]] = []
    found = list(read_records(f"jsonl://{tmp_path}", on_error=lambda w, e: errors.append((w, e))))
    assert [r["request_id"] for r in found] == ["whole", "after"]
    assert [w for w, _ in errors] == [f"{name}:2"]
    assert "not JSON" in str(errors[0][1])


def test_bad_records_are_reported_with_where_they_are(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [
        encode(record("ok-1")),
        "garbage",
        json.dumps({**record("x"), "v": 99}),
        json.dumps({**record("y"), "status": "200"}),
        "",
        encode(record("ok-2")),
    ]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n" + encode(record("cut-off")))
    found = list(read_records(path))
    assert [r["request_id"] for r in found] == ["ok-1", "ok-2"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 4
    for warning, line in zip(warnings, (2, 3, 4, 7), strict=True):
        assert warning.startswith(f"shadowguard: skipped capture record at {path}:{line}: ")
    assert "unknown schema version 99" in warnings[1]
    assert "incomplete last line" in warnings[3]


def test_sources_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="capture source='kafka://x'"):
        read_records("kafka://x")
    with pytest.raises(FileNotFoundError):
        read_records(f"sqlite://{tmp_path}/missing.db")
    with pytest.raises(FileNotFoundError):
        read_records(f"jsonl://{tmp_path}/missing")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (a)").connection.close()
    with pytest.raises(RecordError, match="not a shadowguard capture file"):
        list(read_records(other))


def test_a_lone_surrogate_in_a_body_is_stored_and_read_back(tmp_path: Path) -> None:
    """JSON may escape half a surrogate pair; UTF-8 cannot hold it: it stays escaped."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"name": "\\ud800 x"}'})

    url = f"sqlite://{tmp_path}/c.db"
    drive(ShadowGuardMiddleware(app, capture=url))
    drive(ShadowGuardMiddleware(json_app, capture=url))
    found = records(url)
    assert [r["body"] for r in found] == [{"name": "\ud800 x"}, {"ok": True}]
    assert capture.flush(10)
