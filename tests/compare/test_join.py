"""Joining records by request id: pairs, the window, unpaired per side, label choice."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowguard.compare import CompareError
from shadowguard.compare._join import Index, Labels, join, resolve_labels
from tests.compare._records import record

IDS = st.sets(st.integers(0, 40))


def _index(*records: object) -> Index:
    index = Index()
    for item in records:
        index.add(item)  # type: ignore[arg-type]
    return index


@given(IDS, IDS, IDS)
def test_pairs_are_the_ids_both_sides_saw(base: set[int], cand: set[int], noise: set[int]) -> None:
    index = _index(
        *(record(f"r{i}", "primary") for i in sorted(base)),
        *(record(f"r{i}", "candidate") for i in sorted(cand)),
        *(record(f"r{i}", "secondary") for i in sorted(noise)),
    )
    joined = join(index, Labels("primary", "candidate", "secondary"), window=60)
    assert sorted(b["request_id"] for b, _ in joined.pairs) == sorted(f"r{i}" for i in base & cand)
    assert all(b["request_id"] == c["request_id"] for b, c in joined.pairs)
    assert all(c["label"] == "candidate" for _, c in joined.pairs)
    assert len(joined.noise_pairs) == len(base & noise)
    assert joined.unpaired == Counter(
        baseline=len(base - cand), candidate=len(cand - base), noise=len(noise - base)
    )


def test_window_pairs_nearest_start_and_leaves_the_rest() -> None:
    index = _index(
        record("same", "primary", started_at=100.0),
        record("same", "primary", started_at=500.0),
        record("same", "shadow", started_at=501.0),
        record("same", "shadow", started_at=101.5),
        record("same", "shadow", started_at=900.0),
        record("late", "primary", started_at=0.0),
        record("late", "shadow", started_at=61.0),
    )
    joined = join(index, Labels("primary", "shadow", None), window=60)
    assert sorted((b["started_at"], c["started_at"]) for b, c in joined.pairs) == [
        (100.0, 101.5),
        (500.0, 501.0),
    ]
    assert joined.unpaired == Counter(baseline=1, candidate=2)
    assert joined.unpaired_examples == {"baseline": ["late"], "candidate": ["same", "late"]}


def test_without_a_window_any_start_pairs() -> None:
    index = _index(
        record("late", "primary", started_at=0.0), record("late", "shadow", started_at=1e6)
    )
    assert len(join(index, Labels("primary", "shadow", None), window=None).pairs) == 1


def test_generated_request_ids_never_pair() -> None:
    index = _index(
        record("made-up", "primary", request_id_generated=True),
        record("made-up", "shadow", request_id_generated=True),
        record("real", "primary"),
        record("real", "shadow"),
    )
    joined = join(index, Labels("primary", "shadow", None), window=60)
    assert [b["request_id"] for b, _ in joined.pairs] == ["real"]
    assert joined.generated == Counter(baseline=1, candidate=1)
    assert joined.unpaired == Counter(baseline=1, candidate=1)


@pytest.mark.parametrize(
    ("labels", "options", "chosen"),
    [
        ({"primary": 1, "shadow": 1}, {}, ("primary", "shadow", None)),
        ({"primary": 1, "shadow": 1, "candidate": 1}, {}, ("primary", "candidate", None)),
        ({"primary": 1, "candidate": 1, "secondary": 1}, {}, ("primary", "candidate", "secondary")),
        (
            {"primary": 1, "candidate": 1, "secondary": 1},
            {"noise": "none"},
            ("primary", "candidate", None),
        ),
        (
            {"v1": 1, "v2": 1, "v1b": 1},
            {"baseline": "v1", "candidate": "v2", "noise": "v1b"},
            ("v1", "v2", "v1b"),
        ),
    ],
)
def test_label_defaults(
    labels: dict[str, int], options: dict[str, str], chosen: tuple[str, ...]
) -> None:
    resolved = resolve_labels(Counter(labels), **options)
    assert (resolved.baseline, resolved.candidate, resolved.noise) == chosen


def test_a_side_without_records_is_an_error_naming_the_labels_read() -> None:
    with pytest.raises(
        CompareError,
        match=r"no record labelled 'shadow' for the candidate side \(records by label: primary 3\); choose the label with --candidate",
    ):
        resolve_labels(Counter(primary=3))
    with pytest.raises(CompareError, match="--noise and --baseline are both 'primary'"):
        resolve_labels(Counter(primary=3, shadow=1), noise="primary")
