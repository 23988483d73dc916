"""Shared checks for the middleware tests."""

from __future__ import annotations

from collections import Counter

from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader


def durations(reader: InMemoryMetricReader) -> Counter[tuple[tuple[str, object], ...]]:
    """Request counts of ``shadowguard.request.duration`` per attribute set (cumulative)."""
    counts: Counter[tuple[tuple[str, object], ...]] = Counter()
    data = reader.get_metrics_data()
    if data is None:
        return counts
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != "shadowguard.request.duration":
                    continue
                for point in metric.data.data_points:
                    assert isinstance(point, HistogramDataPoint)
                    key = tuple(sorted((point.attributes or {}).items()))
                    counts[key] += point.count
    return counts


def new_durations(
    before: Counter[tuple[tuple[str, object], ...]], after: Counter[tuple[tuple[str, object], ...]]
) -> dict[tuple[tuple[str, object], ...], int]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}
