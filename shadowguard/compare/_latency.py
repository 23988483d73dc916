"""Latency percentiles: nearest-rank, over every record of a label on a route.

The P-th percentile of ``n`` durations is the smallest duration with at least P % of the
durations at or below it: the value at rank ``ceil(P / 100 * n)`` in ascending order. It is
always a measured duration, and exact (no interpolation, no sketch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

__all__ = ["CURVE_POINTS", "Latency", "curve", "percentile", "summarize"]

#: Points of the distribution drawn in the HTML page (percentiles 0, 1, ..., 100).
CURVE_POINTS = 101


class Latency(TypedDict):
    """Durations of one label on one route, in milliseconds."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None


def percentile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of ascending, non-empty ``ordered``."""
    if not ordered:
        raise ValueError("no durations")
    rank = int(max(1, -(-p * len(ordered) // 100)))  # ceil, exact for an integer p
    return ordered[min(rank, len(ordered)) - 1]


def summarize(durations: list[float]) -> Latency:
    """Count, P50, P90, P99 and max of ``durations`` (sorted in place)."""
    if not durations:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    durations.sort()
    return {
        "count": len(durations),
        "p50": percentile(durations, 50),
        "p90": percentile(durations, 90),
        "p99": percentile(durations, 99),
        "max": durations[-1],
    }


def curve(ordered: Sequence[float]) -> list[float]:
    """The distribution as :data:`CURVE_POINTS` values: minimum, percentiles 1..99, maximum."""
    if not ordered:
        return []
    return [ordered[0], *(percentile(ordered, p) for p in range(1, 100)), ordered[-1]]
