"""The demo's report: what each side left behind, judged, and the comparison of the sides."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from shadowguard.demo import app as service
from shadowguard.demo.runner import SHADOWS, SIDES, requests

__all__ = ["build_report", "render"]


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return round(ordered[index] * 1000, 3)


def _count_lines(path: Path, side: str) -> int:
    if not path.exists():
        return 0
    with path.open(encoding="utf-8") as file:
        return sum(1 for line in file if json.loads(line)["served_by"] == side)


def _expected_statuses(n: int) -> dict[str, int]:
    statuses: Counter[str] = Counter()
    for request in requests(n):
        statuses["200" if not request.is_order else "201" if request.valid else "422"] += 1
    return dict(sorted(statuses.items()))


def build_report(
    folder: Path,
    n: int,
    stats: dict[str, Any],
    *,
    mode: str,
    guard: bool,
    kept: bool = True,
    comparison: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Count what each side left behind (a separate sqlite3 connection) and judge it."""
    traffic = list(requests(n))
    expected = {r.request_id for r in traffic if r.valid}
    orders = sum(r.is_order for r in traffic)
    valid = len(expected)
    connection = sqlite3.connect(folder / service.DATABASE)
    try:
        rows = dict(connection.execute("SELECT served_by, count(*) FROM orders GROUP BY 1"))
        stored = connection.execute("SELECT request_id FROM orders WHERE served_by = 'primary'")
        missing = expected - {request_id for (request_id,) in stored}
    finally:
        connection.close()
    report: dict[str, Any] = {
        "mode": mode,
        "guard": guard,
        "requests": n,
        "orders": orders,
        "valid_requests": valid,
        "invalid_requests": orders - valid,
        "quotes": n - orders,
        "expected_statuses": _expected_statuses(n),
        "folder": str(folder),
        "folder_kept": kept,
    }
    for side in SIDES:
        seen = stats[side]
        errors: dict[str, int] = seen["validation_errors"]
        report[side] = {
            "version": service.VERSIONS[side],
            "requests": seen["requests"],
            "statuses": seen["statuses"],
            "rows": rows.get(side, 0),
            "charges": _count_lines(folder / service.PAYMENTS, side),
            "events": _count_lines(folder / service.EVENTS, side),
            "latency_ms": {
                "p50": _percentile(seen["latencies"], 0.50),
                "p99": _percentile(seen["latencies"], 0.99),
            },
            "suppressed": seen["suppressed"],
            "validation_errors": {"count": sum(errors.values()), "by_error": errors},
        }
    problems = []
    primary = report["primary"]
    for what in ("rows", "charges", "events"):
        for side in SHADOWS:
            if report[side][what]:
                problems.append(f"the {side} left {report[side][what]} {what} behind")
        if primary[what] != valid:
            problems.append(f"the primary has {primary[what]} {what}, expected {valid}")
    if missing:
        problems.append(
            f"the primary lost {len(missing)} valid orders: {', '.join(sorted(missing)[:5])}"
        )
    for side in SIDES:
        if report[side]["requests"] != n:
            problems.append(f"the {side} answered {report[side]['requests']} of {n} requests")
    report["problems"] = problems
    report["ok"] = not problems
    report["comparison"] = comparison
    return report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def render(report: dict[str, Any]) -> str:
    """The report as text for a terminal, the comparison last."""
    sides = [report[side] for side in SIDES]
    guard = "guarded" if report["guard"] else "WITHOUT the guard (--no-guard)"
    lines = [
        f"shadowguard demo: {report['requests']} requests mirrored {report['mode']}, {guard}",
        f"  {report['orders']} orders ({report['valid_requests']} valid, "
        f"{report['invalid_requests']} rejected by the database: quantity 0), "
        f"{report['quotes']} quotes",
        "  primary and secondary run version 1, candidate version 2 (a tax rounding change,",
        "  a slower quote); one SQLite file shared by every side, in "
        + report["folder"]
        + ("" if report["folder_kept"] else " (deleted; keep it with --dir)"),
        "",
        f"  {'':<22}" + "".join(f"{side:>11}" for side in SIDES),
    ]

    def row(label: str, values: list[Any]) -> None:
        lines.append(f"  {label:<22}" + "".join(f"{value!s:>11}" for value in values))

    row("requests answered", [side["requests"] for side in sides])
    statuses = sorted({status for side in sides for status in side["statuses"]})
    for status in statuses:
        row(f"  status {status}", [side["statuses"].get(status, 0) for side in sides])
    row("rows persisted", [side["rows"] for side in sides])
    row("cards charged", [side["charges"] for side in sides])
    row("events published", [side["events"] for side in sides])
    for stat in ("p50", "p99"):
        row(f"latency {stat.upper()} (ms)", [_ms(side["latency_ms"][stat]) for side in sides])
    lines.append("")
    for name in SHADOWS:
        side = report[name]
        errors = side["validation_errors"]
        lines.append(f"  suppressed in the {name}: {_counts(side['suppressed'])}")
        lines.append(f"    validation errors it would have hit: {errors['count']}")
        lines.extend(f"      {count} x {message}" for message, count in errors["by_error"].items())
    lines.append("")
    if report["ok"]:
        lines.append(
            f"OK: the shadows persisted nothing; the primary kept all {report['valid_requests']} "
            "orders."
        )
    else:
        lines.extend(f"FAIL: {problem}" for problem in report["problems"])
        if not report["guard"]:
            lines.append(
                "Without the guard the shadows duplicate every order, charge and event: "
                "run again without --no-guard."
            )
    comparison = report["comparison"]
    if comparison is not None:
        from shadowguard.compare import render_text

        lines += ["", "How the candidate compares (shadowguard compare):", ""]
        lines.append(render_text(comparison))
    return "\n".join(lines)
