"""Segments read from the results topic: anything malformed or forged is one unreadable
segment (``ValueError``), never another exception that would stop a worker or the report."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowguard.compare import Options
from shadowguard.compare._kafka import Segment, choose_chain
from shadowguard.compare._partial import Partial
from shadowguard.compare._worker_settings import stream_settings
from tests.compare._records import record


def _segment(**changes: Any) -> dict[str, Any]:
    partial = Partial(3)
    partial.tally(("GET", "/a"), "primary").add(record())
    segment = Segment(
        id="s1",
        prev=None,
        topic="t",
        partition=0,
        start=-1,
        end=10,
        settings=stream_settings(Options(), 120.0),
        watermark=1_700_000_000.0,
        pending=[[3, 0, 0], [7, 1, 0]],
        pending_examples={"baseline": ["r1"]},
        partial=partial.to_json(),
    )
    data: dict[str, Any] = json.loads(json.dumps(segment.to_json()))
    for path, value in changes.items():
        target = data
        *parents, last = path.split(".")
        for name in parents:
            target = target[name]
        target[last] = value
    return data


def test_a_written_segment_reads_back() -> None:
    segment = Segment.from_json(_segment(), 1)
    assert segment.pending == [[3, 0, 0], [7, 1, 0]]
    assert Partial.from_json(segment.partial, 3).records == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "id",
    "prev",
    "partition",
    "start",
    "end",
    "settings",
    "settings.labels",
    "settings.examples",
    "settings.expire_seconds",
    "settings.ignore",
    "watermark",
    "pending",
    "pending.gaps",
    "pending.codes",
    "pending_examples",
    "partial",
    "partial.tallies",
    "partial.pairs",
    "partial.totals",
    "partial.totals.unpaired",
    "clock",
    "last_digest",
]


@given(st.sampled_from(FIELDS), json_values)
def test_any_malformed_field_is_a_value_error(field: str, value: Any) -> None:
    data = _segment(**{field: value})
    try:
        segment = Segment.from_json(data, 1)
    except ValueError:
        return
    # Accepted: everything the report will use of it works.
    Partial.from_json(segment.partial, segment.settings["examples"])
    assert all(isinstance(n, int) for entry in segment.pending for n in entry)


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,
        b"\xff\xfe",
        b"{}",
        b"null",
        b'{"kind": "shadowguard.compare.segment", "v": 1}',
    ],
)
def test_unreadable_messages_are_value_errors(raw: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)):
        Segment.from_json(json.loads(raw), 1)


def test_a_chain_with_a_missing_link_is_not_chosen() -> None:
    first = Segment.from_json(_segment(), 1)
    second = Segment.from_json(_segment(id="s2", prev="s1", start=10, end=20), 2)
    orphan = Segment.from_json(_segment(id="s3", prev="gone", start=20, end=99), 3)
    assert [s.id for s in choose_chain([orphan, second, first])] == ["s1", "s2"]
