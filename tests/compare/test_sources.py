"""Reading stores: bad records are skipped and counted by reason, never a traceback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from shadowguard.capture_format import encode
from shadowguard.compare import CompareError, Options, compare
from shadowguard.compare._sources import open_source
from tests.compare._records import record, write_jsonl, write_sqlite


def _read(spec: str, **options: object) -> tuple[list[str], dict[str, int], dict[str, str]]:
    source = open_source(spec, **options)  # type: ignore[arg-type]
    ids = [r["request_id"] for r in source.records()]
    return ids, dict(source.stats.skipped), source.stats.first


def test_jsonl_folder_reads_every_file_in_order(tmp_path: Path) -> None:
    write_jsonl(tmp_path, [record("b1"), record("b2")], name="b")
    spec = write_jsonl(tmp_path, [record("a1")], name="a")
    (tmp_path / "notes.txt").write_text("not a capture")
    assert _read(spec)[0] == ["a1", "b1", "b2"]
    assert _read(str(tmp_path))[0] == ["a1", "b1", "b2"]  # a plain folder is JSON lines
    assert _read(str(tmp_path / "a.jsonl"))[0] == ["a1"]


def test_bad_lines_are_skipped_and_counted_by_reason(tmp_path: Path) -> None:
    good = encode(record("ok1"))
    lines = [
        good,
        "{not json",
        "",
        json.dumps([1, 2]),
        json.dumps({**record("v2"), "v": 2}),
        json.dumps({**record("v0"), "v": None}),
        json.dumps({**record("no-label"), "label": None}),
        json.dumps({**record("bad-bytes"), "body_bytes": [1]}),
        json.dumps({**record("nan"), "duration_ms": float("nan")}),
        "[" * 100_000 + "]" * 100_000,
        encode(record("text-body", body="<html>", body_kind="text")),
        encode(record("ok2")),
        good[: len(good) // 2],  # the writer died mid-line
    ]
    content = "\n".join(lines).encode() + b"\n\xff\xfe\n" + good[:10].encode()
    (tmp_path / "c.jsonl").write_bytes(content)
    ids, skipped, first = _read(f"jsonl:///{tmp_path}")
    assert ids == ["ok1", "text-body", "ok2"]
    # The deeply nested line: too deep for the decoder (RecursionError), or not JSON.
    deep = {"nested too deeply": 1} if "nested too deeply" in skipped else {}
    assert skipped == {
        "not JSON": 5 - len(deep),
        **deep,
        "unknown schema version 2": 1,
        "unknown schema version None": 1,
        "invalid record": 3,
        "truncated last line": 1,
    }
    assert first["truncated last line"].startswith("c.jsonl:15: ")
    assert first["unknown schema version 2"].startswith("c.jsonl:5: ")


def test_a_complete_last_line_without_newline_is_read(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text(encode(record("a")) + "\n" + encode(record("b")))
    assert _read(str(tmp_path))[0] == ["a", "b"]


def test_huge_records_are_skipped_without_holding_them(tmp_path: Path) -> None:
    huge = record("huge", body={"blob": "x" * 3_000_000})
    write_jsonl(tmp_path, [record("a"), huge, record("b")])
    ids, skipped, first = _read(f"jsonl:///{tmp_path}", max_record_bytes=1_000_000)
    assert ids == ["a", "b"]
    assert skipped == {"record over 1000000 bytes": 1}
    assert first["record over 1000000 bytes"] == "capture.jsonl:2"
    # Under the bound a large body is read and compared like any other.
    assert _read(f"jsonl:///{tmp_path}")[0] == ["a", "huge", "b"]


def test_sqlite_reads_the_record_column_of_a_wal_database(tmp_path: Path) -> None:
    path = tmp_path / "capture.db"
    spec = write_sqlite(path, [record("a"), record("b", label="shadow")])
    writer = sqlite3.connect(path)  # a writer still has the file open, with WAL content
    writer.execute(
        "INSERT INTO records (request_id, label, record) VALUES ('c', 'shadow', ?)",
        (encode(record("c")),),
    )
    writer.commit()
    try:
        assert _read(spec)[0] == ["a", "b", "c"]
        assert _read(str(path))[0] == ["a", "b", "c"]  # a plain file path: SQLite by its header
    finally:
        writer.close()


def test_sqlite_bad_rows_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "capture.db"
    spec = write_sqlite(path, [record("a")], wal=False)
    connection = sqlite3.connect(path)
    rows = [
        "{",
        json.dumps({**record("x"), "v": 9}),
        encode(record("big", body="y" * 5000)),
        encode(record("b")),
    ]
    with connection:
        connection.executemany("INSERT INTO records (record) VALUES (?)", [(r,) for r in rows])
        connection.execute("INSERT INTO records (record) VALUES (X'FFFE00')")
    connection.close()
    ids, skipped, _ = _read(spec, max_record_bytes=4000)
    assert ids == ["a", "b"]
    assert skipped == {
        "not JSON": 2,
        "unknown schema version 9": 1,
        "record over 4000 bytes": 1,
    }


@pytest.mark.parametrize(
    ("make", "spec", "message"),
    [
        (None, "sqlite:///{tmp}/missing.db", "no such file or folder"),
        (
            None,
            "kafka://broker/topic",
            "unknown scheme 'kafka'; accepted: sqlite:///PATH, jsonl:///DIR, or a path",
        ),
        ("empty-dir", "jsonl:///{tmp}/d", "no *.jsonl file in"),
        ("text", "sqlite:///{tmp}/f.db", "is not a SQLite database"),
        ("text", "{tmp}/f.db", "is not a SQLite database"),
        (
            "no-table",
            "sqlite:///{tmp}/f.db",
            "no table 'records': not a shadowguard capture database",
        ),
        ("no-column", "sqlite:///{tmp}/f.db", "no column 'record' in table 'records'"),
        ("garbage-db", "sqlite:///{tmp}/f.db", "not a readable SQLite database"),
    ],
)
def test_unreadable_sources_are_one_clear_error(
    tmp_path: Path, make: str | None, spec: str, message: str
) -> None:
    if make == "empty-dir":
        (tmp_path / "d").mkdir()
    elif make == "text":
        (tmp_path / "f.db").write_text("hello")
    elif make in ("no-table", "no-column"):
        connection = sqlite3.connect(tmp_path / "f.db")
        connection.execute(
            "CREATE TABLE other (x)" if make == "no-table" else "CREATE TABLE records (x)"
        )
        connection.close()
    elif make == "garbage-db":
        (tmp_path / "f.db").write_bytes(b"SQLite format 3\x00" + b"\x07" * 4000)
    with pytest.raises(CompareError, match=message.replace("(", r"\(").replace("*", r"\*")):
        compare([spec.format(tmp=tmp_path)], Options())


def test_a_damaged_table_keeps_what_was_read(tmp_path: Path) -> None:
    path = tmp_path / "capture.db"
    write_sqlite(path, [record(f"r{i}", body={"pad": "z" * 3000}) for i in range(200)], wal=False)
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(len(data) // 2, len(data) // 2 + 3 * page):
        data[offset] = 0xA5  # scribble over pages in the middle of the table
    path.write_bytes(bytes(data))
    source = open_source(f"sqlite:///{path}")
    ids = [r["request_id"] for r in source.records()]
    assert 0 < len(ids) < 200
    assert set(source.stats.skipped) <= {
        "rest of the table unreadable",
        "not JSON",
        "invalid record",
    }
    assert source.stats.skipped
