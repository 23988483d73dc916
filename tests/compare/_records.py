"""Capture records for the compare tests, and the stores they are read from."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shadowguard.capture_format import SCHEMA_VERSION, CaptureRecord, encode

ROOT = Path(__file__).resolve().parents[2]


def record(request_id: str = "r1", label: str = "primary", **fields: Any) -> CaptureRecord:
    """A valid version-1 record; ``fields`` override the defaults."""
    base: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "request_id": request_id,
        "request_id_generated": False,
        "label": label,
        "method": "GET",
        "route": "/orders/{id}",
        "path": "/orders/1",
        "status": 200,
        "headers": {"content-type": "application/json"},
        "body": {"id": 1, "total": 10.5},
        "body_kind": "json",
        "body_bytes": 24,
        "started_at": 1_700_000_000.0,
        "duration_ms": 5.0,
        "suppressions": {},
        "validation_errors": [],
        "exception": None,
    }
    base.update(fields)
    return base  # type: ignore[return-value]


def write_jsonl(folder: Path, records: Iterable[CaptureRecord], name: str = "capture") -> str:
    """Write ``records`` as ``folder/name.jsonl``; return the source spec of the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.jsonl").open("a", encoding="utf-8") as out:
        for item in records:
            out.write(encode(item) + "\n")
    return f"jsonl:///{folder}"


def write_sqlite(path: Path, records: Iterable[CaptureRecord], wal: bool = True) -> str:
    """Write ``records`` into the ``records`` table of a SQLite file; return its spec."""
    connection = sqlite3.connect(path)
    if wal:
        connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, request_id TEXT, "
        "label TEXT, record TEXT NOT NULL)"
    )
    with connection:
        connection.executemany(
            "INSERT INTO records (request_id, label, record) VALUES (?, ?, ?)",
            [(r["request_id"], r["label"], encode(r)) for r in records],
        )
    connection.close()
    return f"sqlite:///{path}"


def three_way(
    n: int = 300, seed: int = 7, *, rounding_every: int = 20, slow_route: str = "/orders/{id}"
) -> list[CaptureRecord]:
    """A primary, a secondary (same code) and a candidate for ``n`` requests.

    Seeded: the candidate rounds ``total`` differently on every ``rounding_every``-th order,
    and ``slow_route`` is about four times slower on the candidate. Noise: ``created_at``
    and the header ``etag`` differ on every response of every side.
    """
    rng = random.Random(seed)
    routes = [("GET", "/orders/{id}"), ("POST", "/orders"), ("GET", "/health")]
    records: list[CaptureRecord] = []
    for i in range(n):
        method, route = routes[i % len(routes)]
        rid = f"req-{i:05d}"
        start = 1_700_000_000.0 + i * 0.01
        total = round(10 + i * 0.37, 2)
        for label in ("primary", "secondary", "candidate"):
            body: Any = {"status": "ok"}
            if route != "/health":
                body = {
                    "id": i,
                    "total": total,
                    "items": [{"sku": f"s{i}", "price": total}],
                    "created_at": f"2026-01-01T00:00:{rng.random():.6f}",
                }
                if label == "candidate" and i % rounding_every == 0:
                    body["total"] = round(total + 0.01, 2)
            duration = rng.uniform(2, 6)
            if label == "candidate" and route == slow_route:
                duration *= 4
            records.append(
                record(
                    rid,
                    label,
                    method=method,
                    route=route,
                    path=route.replace("{id}", str(i)),
                    body=body,
                    headers={"content-type": "application/json", "etag": f"W/{rng.random()}"},
                    started_at=start + (0.002 if label != "primary" else 0),
                    duration_ms=duration,
                    suppressions={"db.commit": 1}
                    if label != "primary" and method == "POST"
                    else {},
                )
            )
    return records


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m shadowguard compare ARGS``."""
    return shadowguard("compare", *args, cwd=cwd)


def shadowguard(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m shadowguard ARGS`` with our settings out of the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHADOW", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "shadowguard", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def report_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(result.stdout + result.stderr) from None
    return data


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, no traceback, exactly one line of ours on stderr; that line."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("shadowguard compare:")]
    assert len(ours) == 1, result.stderr
    return ours[0]
