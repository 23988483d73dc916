"""Latency percentiles against a plain reference, and the per-route figures built on them."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowguard.compare._latency import CURVE_POINTS, curve, percentile, summarize

DURATIONS = st.lists(
    st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=300
)


def reference(values: list[float], p: int) -> float:
    """The smallest value with at least p % of the values at or below it, by counting."""
    for candidate in sorted(values):
        at_or_below = sum(1 for v in values if v <= candidate)
        if Fraction(at_or_below, len(values)) >= Fraction(p, 100):
            return candidate
    raise AssertionError("unreachable")


@given(DURATIONS, st.integers(1, 100))
def test_percentile_matches_the_reference(values: list[float], p: int) -> None:
    assert percentile(sorted(values), p) == reference(values, p)


@given(DURATIONS)
def test_summary(values: list[float]) -> None:
    stats = summarize(list(values))
    assert stats == {
        "count": len(values),
        "p50": reference(values, 50),
        "p90": reference(values, 90),
        "p99": reference(values, 99),
        "max": max(values),
    }


@given(DURATIONS)
def test_curve_runs_from_minimum_to_maximum(values: list[float]) -> None:
    points = curve(sorted(values))
    assert len(points) == CURVE_POINTS
    assert points[0] == min(values)
    assert points[-1] == max(values)
    assert points == sorted(points)


def test_known_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (50, 90, 99)
    assert percentile([7.0], 99) == 7.0
    assert summarize([]) == {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    with pytest.raises(ValueError, match="no durations"):
        percentile([], 50)
