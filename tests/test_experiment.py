"""Experiments: the caller gets the control's result; the candidate runs as shadow, compared."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

import shadowguard
from shadowguard import (
    ConfigError,
    Experiment,
    Result,
    ShadowSideEffectBlocked,
    capture,
    side_effect,
)
from tests._cli import json_report, run_shadowguard
from tests.middleware._helpers import points

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text("abc", max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)


class Published(list[Result]):
    def __call__(self, result: Result) -> None:
        self.append(result)


@side_effect
def charge(amount: int) -> str:
    return f"charged {amount}"


def test_the_caller_gets_the_control_and_the_candidate_runs_as_shadow() -> None:
    published = Published()
    seen: list[tuple[str, bool]] = []

    def control(x: int) -> dict[str, Any]:
        seen.append(("control", shadowguard.is_shadow()))
        return {"total": x, "charge": charge(x)}

    def candidate(x: int) -> dict[str, Any]:
        seen.append(("candidate", shadowguard.is_shadow()))
        return {"total": x + 1, "charge": charge(x)}

    result = Experiment("total", publish=published).run(control, candidate, 5)
    assert result == {"total": 5, "charge": "charged 5"}
    assert seen == [("control", False), ("candidate", True)]
    [run] = published
    assert not run.matched
    assert sorted((d.path, d.control, d.candidate) for d in run.diffs) == [
        ("charge", "charged 5", None),  # suppressed: @side_effect returns None
        ("total", 5, 6),
    ]
    assert run.candidate.value["charge"] is None  # suppressed: @side_effect returns None
    assert [s.kind for s in run.candidate.suppressed] == ["call"]
    assert run.control.suppressed == ()


def test_the_control_exception_is_raised_and_the_candidate_exception_never() -> None:
    published = Published()

    def control() -> int:
        raise KeyError("missing")

    def candidate() -> int:
        raise ValueError("other")

    experiment = Experiment("errors", publish=published)
    with pytest.raises(KeyError, match="missing"):
        experiment.run(control, candidate)
    assert experiment.run(lambda: 1, candidate) == 1
    first, second = published
    assert not first.matched
    assert not second.matched
    assert isinstance(second.candidate.exception, ValueError)
    assert second.control.value == 1


def test_the_same_exception_on_both_sides_matches() -> None:
    published = Published()

    def both() -> None:
        raise ShadowSideEffectBlocked("no")

    with pytest.raises(ShadowSideEffectBlocked):
        Experiment("same", publish=published).run(both, both)
    assert published[0].matched


def test_candidate_first_and_random_order_still_return_the_control() -> None:
    calls: list[str] = []
    for order in ("candidate-first", "random"):
        experiment = Experiment("order", order=order)

        def control() -> int:
            calls.append("a")
            return 1

        def candidate() -> None:
            calls.append("b")

        for _ in range(20):
            assert experiment.run(control, candidate) == 1
    assert calls[:2] == ["b", "a"]
    assert calls.count("a") == calls.count("b") == 40


def test_ignore_and_clean_and_compare() -> None:
    published = Published()
    experiment = Experiment("ignored", ignore=["meta.*", "items[].at"], publish=published)
    experiment.run(
        lambda: {"meta": {"at": 1}, "items": [{"at": 1, "n": 1}]},
        lambda: {"meta": {"at": 2}, "items": [{"at": 2, "n": 1}]},
    )
    experiment = Experiment("cleaned", clean=lambda v: v["n"], publish=published)
    experiment.run(lambda: {"n": 1, "at": 1}, lambda: {"n": 1, "at": 2})
    experiment = Experiment("close", compare=lambda a, b: abs(a - b) < 0.01, publish=published)
    experiment.run(lambda: 1.0, lambda: 1.001)
    assert [r.matched for r in published] == [True, True, True]


@given(a=JSON, b=JSON)
def test_without_rules_a_run_matches_exactly_when_the_values_are_equal(a: Any, b: Any) -> None:
    published = Published()
    Experiment("equal", publish=published).run(lambda: a, lambda: b)
    assert published[0].matched is (a == b and type(a) is type(b))
    assert bool(published[0].diffs) is not published[0].matched


def test_objects_that_are_not_json_compare_with_equality() -> None:
    published = Published()
    experiment = Experiment("objects", publish=published)
    experiment.run(lambda: {1, 2}, lambda: {2, 1})
    experiment.run(lambda: object(), lambda: object())
    assert [(r.matched, r.diffs) for r in published] == [(True, ()), (False, ())]


def test_sample_zero_disabled_and_the_environment_never_run_the_candidate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[int] = []
    candidate = lambda: ran.append(1)  # noqa: E731
    assert Experiment("never", sample=0).run(lambda: 7, candidate) == 7
    off = Experiment("off")
    off.enabled = False
    assert off.run(lambda: 7, candidate) == 7
    flag = [0.0]
    assert Experiment("flag", sample=lambda: flag[0]).run(lambda: 7, candidate) == 7
    monkeypatch.setenv("SHADOWGUARD_EXPERIMENTS", "off")
    assert Experiment("env").run(lambda: 7, candidate) == 7
    monkeypatch.setenv("SHADOWGUARD_EXPERIMENTS", "env=0, other=1")
    assert Experiment("env").run(lambda: 7, candidate) == 7
    assert ran == []
    assert Experiment("other", sample=0).run(lambda: 7, candidate) == 7
    flag[0] = 1.0
    assert Experiment("flag", sample=lambda: flag[0]).run(lambda: 7, candidate) == 7
    assert ran == [1, 1]


def test_a_sample_runs_about_that_share() -> None:
    ran: list[int] = []
    experiment = Experiment("share", sample=0.25)
    for _ in range(4000):
        experiment.run(lambda: None, lambda: ran.append(1))
    assert 800 < len(ran) < 1200


@pytest.mark.parametrize(
    ("kwargs", "env", "message"),
    [
        ({"order": "first"}, "", "order='first' is not valid: accepted values are control-first"),
        ({"sample": 1.5}, "", "sample=1.5 is not valid: accepted values are 0.0 to 1.0"),
        ({"sample": "x"}, "", "sample='x' is not valid"),
        ({"sample": True}, "", "sample=True is not valid"),
        ({}, "nonsense", "SHADOWGUARD_EXPERIMENTS='nonsense' is not valid: accepted values are"),
        ({}, "a=2", "SHADOWGUARD_EXPERIMENTS a='2' is not valid: accepted values are 0.0"),
    ],
)
def test_bad_settings_fail_when_the_experiment_is_made(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], env: str, message: str
) -> None:
    monkeypatch.setenv("SHADOWGUARD_EXPERIMENTS", env)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Experiment("a", **kwargs)


def test_a_failing_publish_or_compare_never_reaches_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def publish(result: Result) -> None:
        raise RuntimeError("broken publisher")

    def compare(a: Any, b: Any) -> bool:
        raise RuntimeError("broken compare")

    published = Published()
    with caplog.at_level(logging.WARNING, logger="shadowguard.experiment"):
        assert Experiment("p", publish=publish).run(lambda: 1, lambda: 1) == 1
        assert Experiment("c", compare=compare, publish=published).run(lambda: 1, lambda: 1) == 1
    assert "publish failed" in caplog.text
    assert "could not compare" in caplog.text
    assert not published[0].matched


def test_runs_and_durations_are_counted_by_outcome_and_side(
    metric_reader: InMemoryMetricReader,
) -> None:
    def runs() -> dict[str, int]:
        found = {}
        for point in points(metric_reader, "shadowguard.experiment.runs"):
            attributes = dict(point.attributes or {})
            if attributes["experiment"] == "counted":
                found[str(attributes["outcome"])] = int(point.value)
        return found

    def sides() -> dict[str, int]:
        found = {}
        for point in points(metric_reader, "shadowguard.experiment.duration"):
            assert isinstance(point, HistogramDataPoint)
            attributes = dict(point.attributes or {})
            if attributes["experiment"] == "counted":
                found[str(attributes["side"])] = point.count
        return found

    experiment = Experiment("counted")
    for i in range(5):
        experiment.run(lambda: 1, lambda i=i: 1 if i < 3 else 2)
    assert runs() == {"matched": 3, "mismatched": 2}
    assert sides() == {"control": 5, "candidate": 5}


def test_durations_are_bucketed_in_seconds(metric_reader: InMemoryMetricReader) -> None:
    """A 30 ms side lands in the 25-50 ms bucket (the SDK's defaults start at 0, 5, 10)."""
    Experiment("bucketed").run(lambda: time.sleep(0.03), lambda: None)
    (point,) = [
        p
        for p in points(metric_reader, "shadowguard.experiment.duration")
        if dict(p.attributes or {}) == {"experiment": "bucketed", "side": "control"}
    ]
    assert isinstance(point, HistogramDataPoint)
    assert tuple(point.explicit_bounds) == shadowguard.telemetry.DURATION_BUCKETS
    assert point.bucket_counts[3] == 1  # (0.025, 0.05]


@pytest.mark.asyncio
async def test_arun_concurrent_with_a_timeout_cancels_a_slow_candidate() -> None:
    published = Published()
    finished: list[str] = []

    async def control() -> str:
        await asyncio.sleep(0.01)
        return "control"

    async def slow() -> str:
        try:
            await asyncio.sleep(5)
        finally:
            finished.append("candidate ended")
        return "late"

    started = time.monotonic()
    experiment = Experiment("slow", publish=published)
    assert await experiment.arun(control, slow, concurrent=True, timeout=0.05) == "control"
    assert time.monotonic() - started < 1
    assert finished == ["candidate ended"]
    assert isinstance(published[0].candidate.exception, asyncio.TimeoutError)
    assert not published[0].matched


@pytest.mark.asyncio
async def test_arun_runs_the_candidate_as_shadow_and_the_control_as_primary() -> None:
    published = Published()
    sides: list[tuple[str, bool]] = []

    async def side(name: str) -> dict[str, str]:
        sides.append((name, shadowguard.is_shadow()))
        await asyncio.sleep(0)
        sides.append((name, shadowguard.is_shadow()))
        return {"v": "same"}

    for order in ("control-first", "candidate-first"):
        experiment = Experiment("async", order=order, publish=published)
        assert await experiment.arun(side, side, "x", concurrent=order == "control-first") == {
            "v": "same"
        }
    assert all(r.matched for r in published)
    assert sorted(set(sides)) == [("x", False), ("x", True)]

    async def failing() -> None:
        raise LookupError("control failed")

    with pytest.raises(LookupError):
        await Experiment("async-error").arun(failing, failing)


def test_runs_are_captured_for_the_compare_command(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/experiments.db"
    experiment = Experiment("totals", capture=url)
    for i in range(1, 21):
        experiment.run(
            lambda i=i: {"total": i, "charge": "real"},
            lambda i=i: {"total": i + (i % 5 == 0), "charge": charge(i)},
        )
    assert capture.flush(timeout=30)
    records = list(capture.read_records(url))
    assert sorted({r["label"] for r in records}) == ["candidate", "control"]
    candidate = [r for r in records if r["label"] == "candidate"]
    assert all(r["suppressions"] == {"call": 1} for r in candidate)
    assert {(r["method"], r["route"]) for r in records} == {("RUN", "experiment:totals")}
    labels = ["--baseline", "control", "--candidate", "candidate"]
    done = run_shadowguard("compare", url, "--json", *labels)
    assert done.returncode == 0, done.stderr
    report = json_report(done)
    assert report["pairs"] == 20
    [route] = report["routes"]
    assert sorted((d["path"], d["count"]) for d in route["diffs"]) == [("charge", 20), ("total", 4)]


def test_capture_false_and_a_bad_capture_option() -> None:
    assert Experiment("no-capture", capture=False).run(lambda: 1, lambda: 1) == 1
    with pytest.raises(ConfigError, match="capture"):
        Experiment("bad", capture="ftp://x")
