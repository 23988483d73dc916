"""Noise cancellation: a path is reported only past both documented thresholds."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from hypothesis import assume, given
from hypothesis import strategies as st

from shadowguard.compare import Options, compare
from shadowguard.compare._join import Labels
from shadowguard.compare._report import build_route
from shadowguard.compare._routes import Example, PairTally, PathTally
from tests.compare._records import record, write_jsonl


@given(
    st.integers(1, 300),
    st.data(),
    st.integers(1, 300),
    st.sampled_from([0.0, 0.1, 0.2, 0.5, 0.9]),
    st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.3]),
)
def test_reported_exactly_past_both_thresholds(
    pairs: int, data: st.DataObject, noise_pairs: int, relative: float, absolute: float
) -> None:
    count = data.draw(st.integers(1, pairs))
    noise = data.draw(st.integers(0, noise_pairs))
    c, n = Fraction(count, pairs), Fraction(noise, noise_pairs)
    # Exactly on a threshold the float arithmetic may land either side: not a property.
    assume(abs(float(c - n - Fraction(absolute))) > 1e-9)
    assume(abs(float((c - n) / c - Fraction(relative))) > 1e-9)
    tally = PairTally(pairs=pairs, noise_pairs=noise_pairs)
    tally.paths["total"] = PathTally(count, [Example("r1", "total", 1, 2)])
    if noise:
        tally.noise_paths["total"] = PathTally(noise)
    options = Options(noise_relative=relative, noise_absolute=absolute)
    route, _ = build_route(("GET", "/x"), Labels("p", "c", "s"), {}, tally, options)
    expected = c - n > Fraction(absolute) and (c - n) / c > Fraction(relative)
    assert [d["path"] for d in route["diffs"]] == (["total"] if expected else [])
    assert [d["path"] for d in route["noise_suppressed"]] == ([] if expected else ["total"])
    if expected:
        (diff,) = route["diffs"]
        assert (diff["count"], diff["noise"], diff["examples"]) == (count, noise, ["r1"])


def test_without_noise_pairs_every_difference_is_reported() -> None:
    tally = PairTally(pairs=100)
    tally.paths["created_at"] = PathTally(100, [Example("r1", "created_at", "a", "b")])
    route, _ = build_route(("GET", "/x"), Labels("p", "c", None), {}, tally, Options())
    assert [(d["path"], d["noise"], d["noise_rate"]) for d in route["diffs"]] == [
        ("created_at", None, None)
    ]


def _three(rid: str, created: list[str], total: list[float]) -> list[object]:
    return [
        record(rid, label, body={"created_at": at, "total": t}, started_at=1.0)
        for label, at, t in zip(("primary", "secondary", "candidate"), created, total, strict=True)
    ]


def test_a_field_that_differs_everywhere_is_noise_a_seeded_one_is_not(tmp_path: Path) -> None:
    records = []
    for i in range(200):
        seeded = i % 10 == 0
        records += _three(
            f"r{i}", [f"t{i}a", f"t{i}b", f"t{i}c"], [1.0, 1.0, 1.5 if seeded else 1.0]
        )
    report = compare([write_jsonl(tmp_path, records)]).report  # type: ignore[arg-type]
    (route,) = report["routes"]
    assert [(d["path"], d["count"], d["noise"]) for d in route["diffs"]] == [("total", 20, 0)]
    assert route["diffs"][0]["examples"] == ["r0", "r10", "r20"]
    assert [d["path"] for d in route["noise_suppressed"]] == ["created_at"]
    assert route["differing_pairs"] == 20
    assert route["diff_rate"] == 0.1
    # Without the noise side, the timestamp is a difference like any other.
    quiet = compare([f"jsonl:///{tmp_path}"], Options(noise="none")).report["routes"][0]
    assert [d["path"] for d in quiet["diffs"]] == ["created_at", "total"]
    assert quiet["differing_pairs"] == 200
