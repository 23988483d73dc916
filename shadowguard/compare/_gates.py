"""``--fail-on`` gates for pipelines: a comparison passes when every gate given holds.

``diff-rate``
    No route has more than this fraction of its pairs differing (a status mismatch or a
    reported path; noise-suppressed paths do not count).
``p99-ratio``
    No route's candidate P99 is over this many times the baseline's (the rule of the
    latency flag, :func:`p99_exceeds`, with this threshold).
``error-rate``
    No route's candidate error rate (5xx, no response, exception) is higher than the
    baseline's by more than this fraction.
``unpaired``
    At most this fraction of the baseline and candidate records is unpaired.
"""

from __future__ import annotations

from typing import Any

from shadowguard.compare._join import Labels
from shadowguard.compare._options import Options
from shadowguard.compare._report import p99_exceeds

__all__ = ["check_gates"]


def _name(route: dict[str, Any]) -> str:
    return f"{route['method']} {route['route']}"


def _over(
    routes: list[dict[str, Any]], key: str, limit: float | None
) -> list[tuple[dict[str, Any], float]]:
    """The routes whose ``key`` is over ``limit``, with that value (none without a limit)."""
    if limit is None:
        return []
    return [
        (route, route[key]) for route in routes if route[key] is not None and route[key] > limit
    ]


def check_gates(report: dict[str, Any], labels: Labels, options: Options) -> dict[str, Any]:
    """The ``gates`` member of the report: the thresholds given, what broke them, the verdict."""
    gates = options.fail_on
    failures: list[str] = []
    routes: list[dict[str, Any]] = report["routes"]
    for route, rate in _over(routes, "diff_rate", gates.diff_rate):
        failures.append(
            f"diff-rate: {_name(route)} differs in {rate:.2%} of pairs "
            f"(limit {gates.diff_rate:.2%})"
        )
    if gates.p99_ratio is not None:
        for route in routes:
            if p99_exceeds(route, labels, gates.p99_ratio, options.min_count):
                ratio = route["latency_ratio"]["p99"]
                failures.append(
                    f"p99-ratio: {_name(route)} candidate P99 is x{ratio:.2f} the baseline's "
                    f"(limit x{gates.p99_ratio:g})"
                )
    for route, change in _over(routes, "error_rate_change", gates.error_rate):
        failures.append(
            f"error-rate: {_name(route)} candidate errors up by {change:.2%} "
            f"(limit {gates.error_rate:.2%})"
        )
    if gates.unpaired is not None:
        unpaired = report["unpaired"]["baseline"] + report["unpaired"]["candidate"]
        by_label = report["read"]["by_label"]
        total = by_label.get(labels.baseline, 0) + by_label.get(labels.candidate, 0)
        share = unpaired / total if total else 0.0
        if share > gates.unpaired:
            failures.append(
                f"unpaired: {share:.2%} of baseline and candidate records are unpaired "
                f"(limit {gates.unpaired:.2%})"
            )
    thresholds = {
        name.replace("_", "-"): value for name, value in vars(gates).items() if value is not None
    }
    return {"thresholds": thresholds, "failures": failures, "passed": not failures}
