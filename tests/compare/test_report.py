"""The report of a three-way capture: what it finds, and that it keeps its documented schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shadowguard.compare import FailOn, Options, compare, render_text, report_schema
from tests.compare._records import record, three_way, write_jsonl, write_sqlite


@pytest.fixture(scope="module")
def three_way_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("capture")
    return compare([write_sqlite(folder / "capture.db", three_way(300))]).report


def _route(report: dict[str, Any], name: str) -> dict[str, Any]:
    routes: list[dict[str, Any]] = report["routes"]
    (route,) = [r for r in routes if f"{r['method']} {r['route']}" == name]
    return route


def test_the_seeded_differences_and_only_them(three_way_report: dict[str, Any]) -> None:
    report = three_way_report
    assert report["labels"] == {
        "baseline": "primary",
        "candidate": "candidate",
        "noise": "secondary",
    }
    assert (report["pairs"], report["noise_pairs"]) == (300, 300)
    assert report["unpaired"] == {"baseline": 0, "candidate": 0, "noise": 0}
    # Every 20th request is seeded; every third one is GET /health, whose body has no total.
    seeded = {f"req-{i:05d}" for i in range(0, 300, 20) if i % 3 != 2}
    for name in ("GET /orders/{id}", "POST /orders"):
        route = _route(report, name)
        assert [d["path"] for d in route["diffs"]] == ["total"]
        assert set(route["diffs"][0]["examples"]) <= seeded
        assert {d["path"] for d in route["noise_suppressed"]} == {"created_at", "header:etag"}
    assert sum(
        _route(report, n)["diffs"][0]["count"] for n in ("GET /orders/{id}", "POST /orders")
    ) == len(seeded)
    value = _route(report, "GET /orders/{id}")["diffs"][0]["values"][0]
    assert float(value["candidate"]) == pytest.approx(float(value["baseline"]) + 0.01)
    assert _route(report, "GET /health")["diffs"] == []
    assert report["status_mismatches"] == 0


def test_only_the_slowed_route_is_flagged_and_it_comes_first(
    three_way_report: dict[str, Any],
) -> None:
    routes = three_way_report["routes"]
    assert [r["latency_flagged"] for r in routes] == [True, False, False]
    slow = routes[0]
    assert (slow["method"], slow["route"]) == ("GET", "/orders/{id}")
    assert 3 < slow["latency_ratio"]["p99"] < 5
    assert 3 < slow["latency_ratio_to_noise"]["p99"] < 5
    assert set(slow["latency"]) == {"primary", "secondary", "candidate"}
    assert slow["latency"]["primary"]["count"] == 100
    assert [r["route"] for r in routes][-1] == "/health"  # no finding: last


def test_suppressions_per_route_and_label(three_way_report: dict[str, Any]) -> None:
    post = _route(three_way_report, "POST /orders")
    assert post["suppressions"] == {
        "primary": {},
        "secondary": {"db.commit": 100},
        "candidate": {"db.commit": 100},
    }


def test_the_report_keeps_its_schema(three_way_report: dict[str, Any], tmp_path: Path) -> None:
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(three_way_report, schema)
    # Every kind of finding at once, and a two-way capture without noise.
    records = [
        record("a", "primary", status=200, validation_errors=["too long"]),
        record(
            "a", "shadow", status=500, exception="ValueError", validation_errors=["too long", "bad"]
        ),
        record("b", "primary", request_id_generated=True),
        record("c", "shadow", route=None, path="/raw"),
    ]
    report = compare(
        [write_jsonl(tmp_path, records)], Options(fail_on=FailOn(diff_rate=0.0, unpaired=0.1))
    ).report
    jsonschema.validate(report, schema)
    json.dumps(report, allow_nan=False)
    assert report["unpaired"] == {"baseline": 1, "candidate": 1}
    assert report["generated_ids"] == {"baseline": 1, "candidate": 0}
    route = _route(report, "GET /orders/{id}")
    assert (route["status_mismatches"], route["error_rate_change"]) == (1, 1.0)
    assert route["status_examples"] == [{"request_id": "a", "baseline": 200, "candidate": 500}]
    assert route["exceptions"] == {"primary": {}, "shadow": {"ValueError": 1}}
    assert route["validation_errors"]["shadow"] == {"count": 2, "examples": ["too long", "bad"]}
    assert _route(report, "GET /raw")["pairs"] == 0  # no template: the path is the route
    assert report["gates"]["passed"] is False
    assert [f.split(":")[0] for f in report["gates"]["failures"]] == ["diff-rate", "unpaired"]


def test_the_text_summary_names_what_changed(three_way_report: dict[str, Any]) -> None:
    text = render_text(three_way_report)
    assert text.splitlines()[0] == (
        "shadowguard compare: primary (baseline) vs candidate (candidate), noise secondary"
    )
    assert "300 pairs" in text
    slow = text.index("GET /orders/{id}: 100 pairs")
    assert "SLOWER: p99 x" in text[slow:].splitlines()[0]
    assert "  total: " in text
    assert "noise (not reported): created_at, header:etag" in text
    assert text.index("GET /orders/{id}") < text.index("POST /orders")
    assert "no difference on 1 route(s): GET /health" in text


def test_control_characters_in_captured_text_do_not_reach_the_terminal(tmp_path: Path) -> None:
    evil = "\x1b]0;pwned\x07\x1b[2J"
    records = [
        record(evil, "primary", body={"k": evil}, route=evil),
        record(evil, "shadow", body={"k": "x"}, route=evil),
    ]
    text = render_text(compare([write_jsonl(tmp_path, records)]).report)
    assert "\x1b" not in text
    assert "\x07" not in text
