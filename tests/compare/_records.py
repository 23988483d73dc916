"""Capture records for the capture and compare tests, and the stores they are read from."""

from __future__ import annotations

import random
import sqlite3
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shadowguard.capture_format import SCHEMA_VERSION, CaptureRecord, encode
from tests._cli import run_shadowguard


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
        "CREATE TABLE IF NOT EXISTS shadowguard_capture (id INTEGER PRIMARY KEY, request_id TEXT, "
        "label TEXT, record TEXT NOT NULL)"
    )
    with connection:
        connection.executemany(
            "INSERT INTO shadowguard_capture (request_id, label, record) VALUES (?, ?, ?)",
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
    return run_shadowguard("compare", *args, cwd=cwd)
