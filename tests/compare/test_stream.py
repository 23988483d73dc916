"""The Kafka workers' pieces without Kafka: the sketch, partials, and the stream join.

The stream join, checkpointed and restored at arbitrary places (and replayed after a
simulated crash), must count what ``shadowguard compare`` counts over the same records.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowguard._fieldpaths import IgnoreRules
from shadowguard.capture_format import CaptureRecord
from shadowguard.compare import Options
from shadowguard.compare._compare import build_report, compare
from shadowguard.compare._diff import Differ
from shadowguard.compare._join import Labels
from shadowguard.compare._latency import percentile
from shadowguard.compare._partial import Partial
from shadowguard.compare._sketch import RELATIVE_ACCURACY, Sketch
from shadowguard.compare._stream import PartitionJoin, unpaired_role
from tests.compare._records import record, write_jsonl

durations = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=0.001, max_value=3_600_000, allow_nan=False)),
    min_size=1,
    max_size=300,
)


@given(durations, st.sampled_from([1, 10, 50, 90, 99, 99.9, 100]))
def test_a_sketch_percentile_is_within_its_relative_accuracy(values: list[float], p: float) -> None:
    sketch = Sketch()
    for value in values:
        sketch.add(value)
    exact = percentile(sorted(values), p)
    assert math.isclose(sketch.percentile(p), exact, rel_tol=RELATIVE_ACCURACY, abs_tol=1e-9)
    assert sketch.summary()["max"] == max(values)


@given(durations, durations)
def test_merged_sketches_equal_the_sketch_of_all_values(a: list[float], b: list[float]) -> None:
    left, right, whole = Sketch(), Sketch(), Sketch()
    for value in a:
        left.add(value)
        whole.add(value)
    for value in b:
        right.add(value)
        whole.add(value)
    left.merge(Sketch.from_json(json.loads(json.dumps(right.to_json()))))
    assert left.to_json() == whole.to_json()
    assert [left.percentile(p) for p in (50, 90, 99)] == [whole.percentile(p) for p in (50, 90, 99)]


def test_a_malformed_sketch_is_refused() -> None:
    sketch = Sketch()
    sketch.add(3.0)
    data = sketch.to_json()
    with pytest.raises(ValueError, match="add up"):
        Sketch.from_json(data | {"count": 5})
    with pytest.raises(TypeError):
        Sketch.from_json(data | {"buckets": [1, 2]})


# -- the stream join ---------------------------------------------------------------------------

LABELS = ("primary", "shadow", "secondary", "other")


@st.composite
def streams(draw: Any) -> list[CaptureRecord]:
    """Records of a few request ids, sides in any order, some missing, some generated."""
    count = draw(st.integers(min_value=0, max_value=40))
    out: list[CaptureRecord] = []
    for i in range(count):
        start = 1_700_000_000.0 + draw(st.integers(min_value=0, max_value=400))
        route = draw(st.sampled_from(["/a/{id}", "/b"]))
        for label in draw(st.lists(st.sampled_from(LABELS), max_size=4, unique=True)):
            out.append(
                record(
                    f"r{i}",
                    label,
                    route=route,
                    started_at=start + draw(st.sampled_from([0.0, 0.5, 5.0, 90.0])),
                    duration_ms=draw(st.sampled_from([1.0, 2.5, 40.0])),
                    status=draw(st.sampled_from([200, 200, 500])),
                    body={"id": i, "v": draw(st.integers(min_value=0, max_value=2))},
                    request_id_generated=draw(st.booleans()) and draw(st.booleans()),
                )
            )
    shuffled: list[CaptureRecord] = draw(st.permutations(out))
    return shuffled


def _join(labels: Labels, window: float | None, expire: float) -> PartitionJoin:
    differ = Differ(IgnoreRules(()), None)
    return PartitionJoin(labels, window, expire, differ, 3)


def _checkpoint(
    join: PartitionJoin,
) -> tuple[list[tuple[int, int, int]], tuple[float, int, float]]:
    """What a segment keeps of a join: the held records and the clock."""
    held = [(h.offset, h.role, h.flags) for h in join.held_records()]
    return held, (join.watermark, join.streak, join.streak_max)


def _stream_totals(
    records: list[CaptureRecord],
    labels: Labels,
    window: float | None,
    cuts: list[int],
    crash_after: int,
    expire: float = 10_000.0,
) -> Partial:
    """Run the join with a checkpoint at every cut, and after the last one a crash that
    loses ``crash_after`` records' worth of work, replayed from that checkpoint."""
    merged = Partial(3)
    join = _join(labels, window, expire)
    position = 0
    for cut in [*sorted({min(c, len(records)) for c in cuts}), len(records)]:
        if cut < position:
            continue
        for offset in range(position, cut):
            join.add(offset, records[offset])
        merged.merge(Partial.from_json(json.loads(json.dumps(join.take_partial().to_json())), 3))
        held, clock = _checkpoint(join)
        # A crash: some work after the checkpoint is lost, a new owner restores it.
        for offset in range(cut, min(len(records), cut + crash_after)):
            join.add(offset, records[offset])
        join = _join(labels, window, expire)
        join.watermark, join.streak, join.streak_max = clock
        for offset, _, flags in held:
            join.restore(offset, records[offset], flags)
        position = cut
    for held_record in join.held_records():
        side = unpaired_role(held_record.role, held_record.flags)
        if side is not None:
            merged.totals.unpaired[side] += 1
    return merged


@settings(max_examples=150, deadline=None)
@given(
    streams(),
    st.lists(st.integers(min_value=0, max_value=160), max_size=4),
    st.integers(min_value=0, max_value=6),
    st.sampled_from([None, 1.0, 60.0]),
    st.booleans(),
)
def test_the_stream_join_counts_what_a_file_comparison_counts(
    tmp_path_factory: pytest.TempPathFactory,
    records: list[CaptureRecord],
    cuts: list[int],
    crash_after: int,
    window: float | None,
    noise: bool,
) -> None:
    labels = Labels("primary", "shadow", "secondary" if noise else None)
    merged = _stream_totals(records, labels, window, cuts, crash_after)
    ids = {(r["request_id"], r["label"]) for r in records if not r["request_id_generated"]}
    per_side = [sum(1 for r in records if (r["request_id"], r["label"]) == k) for k in ids]
    if not any(labels.roles()) or not records or any(n > 1 for n in per_side):
        return  # reused ids pair in arrival order here, nearest start in a file: not compared
    options = Options(window=window, noise="secondary" if noise else "none", candidate="shadow")
    if not {r["label"] for r in records} >= {
        "primary",
        "shadow",
        *(["secondary"] if noise else []),
    }:
        return  # a file comparison refuses a side without records
    expected = compare([write_jsonl(tmp_path_factory.mktemp("j"), records)], options).report
    stream, _ = build_report(
        labels, merged.tallies, merged.pairs, merged.totals, options, expected["read"]
    )
    for key in ("pairs", "noise_pairs", "unpaired", "generated_ids", "differing_pairs"):
        assert stream[key] == expected[key], key
    routes = {(r["method"], r["route"]): r for r in expected["routes"]}
    for route in stream["routes"]:
        other = routes[route["method"], route["route"]]
        for key in ("pairs", "noise_pairs", "differing_pairs", "status", "error_rate"):
            assert route[key] == other[key], (route["route"], key)
        assert [(d["path"], d["count"]) for d in route["diffs"]] == [
            (d["path"], d["count"]) for d in other["diffs"]
        ]
        for label, latency in route["latency"].items():
            assert latency["count"] == other["latency"][label]["count"]
            if latency["count"]:
                assert math.isclose(
                    latency["p99"], other["latency"][label]["p99"], rel_tol=RELATIVE_ACCURACY
                )


@settings(max_examples=300, deadline=None)
@given(
    streams(),
    st.lists(st.integers(min_value=0, max_value=160), max_size=4),
    st.integers(min_value=0, max_value=6),
    st.booleans(),
)
def test_checkpoints_and_crashes_do_not_change_what_expires(
    records: list[CaptureRecord], cuts: list[int], crash_after: int, noise: bool
) -> None:
    labels = Labels("primary", "shadow", "secondary" if noise else None)
    whole = _stream_totals(records, labels, 60.0, [], 0, expire=50.0)
    pieces = _stream_totals(records, labels, 60.0, cuts, crash_after, expire=50.0)
    assert pieces.totals == whole.totals
    assert pieces.records == whole.records == len(records)


def test_a_record_held_beyond_expire_is_unpaired_and_memory_stays_bounded() -> None:
    join = _join(Labels("primary", "shadow", None), None, expire=10.0)
    for i in range(1000):
        join.add(i, record(f"r{i}", "primary", started_at=1_700_000_000.0 + i))
        assert join.held <= 12
    partial = join.take_partial()
    assert partial.totals.unpaired["baseline"] >= 1000 - 12
    assert partial.totals.pairs == 0


def test_one_record_with_a_wrong_clock_neither_expires_nor_stops_the_others() -> None:
    join = _join(Labels("primary", "shadow", None), None, expire=100.0)
    start = 1_700_000_000.0
    for i in range(50):
        join.add(i, record(f"a{i}", "primary", started_at=start + i))
    join.add(50, record("bad", "primary", started_at=start * 1000))  # milliseconds
    for i in range(50):
        join.add(51 + i, record(f"a{i}", "shadow", started_at=start + i + 0.001))
    partial = join.take_partial()
    assert partial.totals.pairs == 50
    # The clock still moves: a long run afterwards stays bounded by the expiry.
    for i in range(2000):
        join.add(200 + i, record(f"b{i}", "primary", started_at=start + 100 + i))
        assert join.held <= 105
    assert len(join._heap) <= 2 * join.held + 1024


def test_a_partition_whose_first_record_has_a_wrong_clock_recovers() -> None:
    join = _join(Labels("primary", "shadow", None), None, expire=20.0)
    start = 1_700_000_000.0
    join.add(0, record("bad", "primary", started_at=start * 1000))
    for i in range(3000):
        join.add(1 + i, record(f"b{i}", "primary", started_at=start + i))
        assert join.held <= 40  # the clock followed the run of normal records


def test_a_traffic_pause_longer_than_expire_moves_the_clock() -> None:
    join = _join(Labels("primary", "shadow", None), None, expire=20.0)
    start = 1_700_000_000.0
    for i in range(10):
        join.add(i, record(f"a{i}", "primary", started_at=start + i))
    for i in range(100):  # an hour later
        join.add(10 + i, record(f"b{i}", "primary", started_at=start + 3600 + i))
    assert join.watermark >= start + 3600
    assert join.take_partial().totals.unpaired["baseline"] >= 10 + 100 - 25
