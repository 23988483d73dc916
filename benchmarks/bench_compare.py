"""``shadowguard compare`` throughput: 100,000 captured pairs, read, joined, diffed, reported.

An absolute figure (records and pairs per second on this machine), not a guarded/unguarded
ratio: there is no unguarded comparison. Measured once per run, in the API pass only (the
comparison uses no telemetry). The records look like an order service's: a JSON body of a
dozen fields with a list of items, a timestamp that differs on every pair, a seeded
difference on 5 % of the pairs; both stores the capture writes are timed (SQLite, JSON lines).
"""

from __future__ import annotations

import random
import resource
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import QUICK, Harness
from shadowguard.capture_format import SCHEMA_VERSION, CaptureRecord, encode

PAIRS = 100_000
ROUTES = [("GET", "/orders/{id}"), ("POST", "/orders"), ("GET", "/customers/{id}/orders")]


def _records(pairs: int) -> list[CaptureRecord]:
    rng = random.Random(1)
    out: list[CaptureRecord] = []
    for i in range(pairs):
        method, route = ROUTES[i % len(ROUTES)]
        items = [
            {"sku": f"sku-{rng.randrange(1000)}", "qty": rng.randrange(1, 5), "price": 9.99}
            for _ in range(3)
        ]
        for label in ("primary", "shadow"):
            body: dict[str, Any] = {
                "id": i,
                "customer": {"id": i % 977, "name": "A. Customer", "tier": "gold"},
                "items": items,
                "total": 29.97,
                "currency": "EUR",
                "status": "created",
                "created_at": f"2026-01-01T00:00:{rng.random():.6f}",
            }
            if label == "shadow" and i % 20 == 0:
                body["total"] = 29.98
            out.append(
                {
                    "v": SCHEMA_VERSION,
                    "request_id": f"req-{i}",
                    "request_id_generated": False,
                    "label": label,
                    "method": method,
                    "route": route,
                    "path": route.replace("{id}", str(i)),
                    "status": 200,
                    "headers": {"content-type": "application/json", "etag": f"W/{i}"},
                    "body": body,
                    "body_kind": "json",
                    "body_bytes": 300,
                    "started_at": 1_700_000_000 + i * 0.001,
                    "duration_ms": rng.lognormvariate(1.5, 0.5),
                    "suppressions": {"db.commit": 1} if label == "shadow" else {},
                    "validation_errors": [],
                    "exception": None,
                }
            )
    return out


def _write(folder: Path, records: list[CaptureRecord]) -> tuple[str, str]:
    lines = [encode(r) for r in records]
    (folder / "capture").mkdir()
    (folder / "capture" / "capture.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    connection = sqlite3.connect(folder / "capture.db")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(
        "CREATE TABLE records (id INTEGER PRIMARY KEY, request_id TEXT, label TEXT, record TEXT)"
    )
    with connection:
        connection.executemany(
            "INSERT INTO records (request_id, label, record) VALUES (?, ?, ?)",
            [(r["request_id"], r["label"], line) for r, line in zip(records, lines, strict=True)],
        )
    connection.close()
    return f"sqlite:///{folder / 'capture.db'}", f"jsonl:///{folder / 'capture'}"


def run(h: Harness) -> None:
    if h.sdk:
        return  # no telemetry on this path: the API pass measures it
    from shadowguard.compare import compare

    records = _records(PAIRS)
    with tempfile.TemporaryDirectory() as tmp:
        sources = _write(Path(tmp), records)
        del records
        for name, source in zip(("SQLite", "JSON lines"), sources, strict=True):
            samples, cpu = [], []
            for _ in range(1 if QUICK else 3):
                start, start_cpu = time.perf_counter(), time.process_time()
                report = compare([source]).report
                samples.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            assert report["pairs"] == PAIRS, report["pairs"]
            seconds = statistics.median(samples)
            # CPU time too: on a shared machine the wall clock also measures the neighbours.
            h.note(
                f"compare {PAIRS:,} pairs from {name}: {seconds:.2f} s, "
                f"{2 * PAIRS / seconds:,.0f} records/s ({PAIRS / seconds:,.0f} pairs/s; "
                f"CPU {statistics.median(cpu):.2f} s; median of {len(samples)}; "
                f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB)"
            )
