"""Shared checks for the admission tests: the shed counter and a fresh process gate."""

from __future__ import annotations

from collections import Counter

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shadowguard.middleware import _admission
from tests.middleware._helpers import reason_counts


def shed_counts(reader: InMemoryMetricReader) -> Counter[str]:
    """``shadowguard.shadow_shed`` per ``reason`` (cumulative)."""
    return reason_counts(reader, "shadowguard.shadow_shed")


def new_sheds(reader: InMemoryMetricReader, before: Counter[str]) -> dict[str, int]:
    after = shed_counts(reader)
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def fresh_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process gate of the test's own: no request in flight, no burst logged yet."""
    monkeypatch.setattr(_admission, "_gate", _admission._Gate())
