"""Per-route tallies, filled while records are read and pairs are diffed.

A route is the method and the route template (``GET /orders/{id}``), or the raw path when
the framework gave no template. Every record of a label adds to that label's tally on its
route (durations, statuses, errors, suppressions, validation errors); every pair adds to the
route of its baseline record (status mismatches, differing paths with a few examples).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from shadowguard.capture_format import CaptureRecord
from shadowguard.compare._diff import Difference, PairDiff
from shadowguard.compare._latency import Latency, summarize

__all__ = ["Example", "LabelTally", "PairTally", "PathTally", "RouteKey", "is_error", "route_of"]

RouteKey = tuple[str, str]
VALIDATION_EXAMPLES = 3


def route_of(record: CaptureRecord) -> RouteKey:
    """``(METHOD, template or path)``."""
    return record["method"].upper(), record["route"] or record["path"]


def is_error(record: CaptureRecord) -> bool:
    """A 5xx, no response at all, or an exception the application raised."""
    status = record["status"]
    return status is None or status >= 500 or record["exception"] is not None


@dataclass
class LabelTally:
    """One label's records on one route."""

    durations: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    exceptions: Counter[str] = field(default_factory=Counter)
    suppressions: Counter[str] = field(default_factory=Counter)
    validation_errors: int = 0
    validation_examples: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Records counted."""
        return len(self.durations)

    def latency(self) -> Latency:
        """Count and percentiles of the durations (exact: nearest-rank)."""
        return summarize(self.durations)  # sorts in place

    def ordered(self) -> list[float]:
        """The durations, ascending (after :meth:`latency`), for the charts."""
        return self.durations

    def add_duration(self, duration_ms: float) -> None:
        self.durations.append(duration_ms)

    def add(self, record: CaptureRecord) -> None:
        self.add_duration(record["duration_ms"])
        status = record["status"]
        self.statuses["none" if status is None else str(status)] += 1
        if is_error(record):
            self.errors += 1
        if record["exception"] is not None:
            self.exceptions[record["exception"]] += 1
        if record["suppressions"]:
            self.suppressions.update(record["suppressions"])
        messages = record["validation_errors"]
        if messages:
            self.validation_errors += len(messages)
            for message in messages:
                if (
                    len(self.validation_examples) < VALIDATION_EXAMPLES
                    and message not in self.validation_examples
                ):
                    self.validation_examples.append(message)


@dataclass(frozen=True)
class Example:
    """A request where a path differs: its id, the concrete place, both values."""

    request_id: str
    at: str
    baseline: object
    candidate: object


@dataclass
class PathTally:
    """How many pairs differ at one collapsed path, with the first few examples."""

    count: int = 0
    examples: list[Example] = field(default_factory=list)


def _tally(
    paths: dict[str, PathTally], request_id: str, differences: list[Difference], keep: int
) -> frozenset[str]:
    seen: set[str] = set()
    for difference in differences:
        if difference.path in seen:
            continue  # a pair counts once per path, however many list elements differ
        seen.add(difference.path)
        tally = paths.get(difference.path)
        if tally is None:
            tally = paths[difference.path] = PathTally()
        tally.count += 1
        if len(tally.examples) < keep:
            tally.examples.append(
                Example(request_id, difference.at, difference.baseline, difference.candidate)
            )
    return frozenset(seen)


@dataclass
class PairTally:
    """The pairs of one route: candidate against baseline, and noise against baseline."""

    examples: int = 3
    pairs: int = 0
    noise_pairs: int = 0
    status_mismatches: int = 0
    noise_status_mismatches: int = 0
    status_examples: list[Example] = field(default_factory=list)
    not_compared: int = 0
    paths: dict[str, PathTally] = field(default_factory=dict)
    noise_paths: dict[str, PathTally] = field(default_factory=dict)
    #: (status differs, differing paths) -> pairs: which pairs differ once noise is known.
    shapes: Counter[tuple[bool, frozenset[str]]] = field(default_factory=Counter)

    def add_pair(self, baseline: CaptureRecord, candidate: CaptureRecord, diff: PairDiff) -> None:
        self.pairs += 1
        if diff.status:
            self.status_mismatches += 1
            if len(self.status_examples) < self.examples:
                self.status_examples.append(
                    Example(
                        baseline["request_id"], "status", baseline["status"], candidate["status"]
                    )
                )
        if not diff.body_compared:
            self.not_compared += 1
        paths = _tally(self.paths, baseline["request_id"], diff.differences, self.examples)
        if diff.status or paths:
            self.shapes[diff.status, paths] += 1

    def add_noise_pair(self, baseline: CaptureRecord, diff: PairDiff) -> None:
        self.noise_pairs += 1
        if diff.status:
            self.noise_status_mismatches += 1
        _tally(self.noise_paths, baseline["request_id"], diff.differences, 1)
