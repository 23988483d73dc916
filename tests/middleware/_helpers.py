"""Shared checks for the middleware tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)


def points(reader: InMemoryMetricReader, name: str) -> Iterator[Any]:
    """The data points of metric ``name`` in the reader's current collection."""
    data = reader.get_metrics_data()
    if data is None:
        return
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    yield from metric.data.data_points


def reason_counts(reader: InMemoryMetricReader, name: str) -> Counter[str]:
    """Counter ``name`` per ``reason`` (cumulative)."""
    counts: Counter[str] = Counter()
    for point in points(reader, name):
        assert isinstance(point, NumberDataPoint)
        counts[str((point.attributes or {})["reason"])] += int(point.value)
    return counts


def durations(reader: InMemoryMetricReader) -> Counter[tuple[tuple[str, object], ...]]:
    """Request counts of ``shadowguard.request.duration`` per attribute set (cumulative)."""
    counts: Counter[tuple[tuple[str, object], ...]] = Counter()
    for point in points(reader, "shadowguard.request.duration"):
        assert isinstance(point, HistogramDataPoint)
        counts[tuple(sorted((point.attributes or {}).items()))] += point.count
    return counts


def new_durations(
    before: Counter[tuple[tuple[str, object], ...]], after: Counter[tuple[tuple[str, object], ...]]
) -> dict[tuple[tuple[str, object], ...], int]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}
