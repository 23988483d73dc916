"""Shared checks for the middleware tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)

from shadowguard import side_effect

if TYPE_CHECKING:
    from tests.middleware.conftest import PgTable


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


def save_into(table: PgTable | None) -> Callable[[str], None]:
    """A test app's write: a ``@side_effect`` inserting a ref into ``table``."""

    @side_effect
    def save(ref: str) -> None:
        assert table is not None
        table.insert(ref)

    return save


def closing_body(cleanup: Callable[[], None], *chunks: str) -> Iterator[str]:
    """A streamed body of ``chunks`` whose ``cleanup`` runs when the server closes it, even
    read only in part."""
    try:
        yield from chunks
    finally:
        cleanup()
