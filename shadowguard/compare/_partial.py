"""Partial results: what a Kafka worker tallied over a stretch of one partition, mergeable.

A :class:`Partial` holds the same tallies one ``shadowguard compare`` run fills (per route and
label, per route for pairs, the totals), with durations in a :class:`~._sketch.Sketch`
instead of a list, so that partials from any number of workers add up to the report of all
the records. Counts add exactly; examples are kept up to their limits, in merge order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shadowguard._fieldpaths import Opaque
from shadowguard.compare._diff import preview
from shadowguard.compare._report import Totals
from shadowguard.compare._routes import (
    VALIDATION_EXAMPLES,
    Example,
    LabelTally,
    PairTally,
    PathTally,
    RouteKey,
)
from shadowguard.compare._sketch import Sketch

__all__ = ["Partial", "SketchTally"]


@dataclass
class SketchTally(LabelTally):
    """A :class:`LabelTally` whose durations are a mergeable sketch."""

    sketch: Sketch = field(default_factory=Sketch)

    @property
    def count(self) -> int:
        return self.sketch.count

    def latency(self) -> Any:
        return self.sketch.summary()

    def ordered(self) -> list[float]:
        return self.sketch.curve()

    def add_duration(self, duration_ms: float) -> None:
        self.sketch.add(duration_ms)

    def merge(self, other: SketchTally) -> None:
        self.sketch.merge(other.sketch)
        self.statuses.update(other.statuses)
        self.errors += other.errors
        self.exceptions.update(other.exceptions)
        self.suppressions.update(other.suppressions)
        self.validation_errors += other.validation_errors
        for message in other.validation_examples:
            if (
                len(self.validation_examples) < VALIDATION_EXAMPLES
                and message not in self.validation_examples
            ):
                self.validation_examples.append(message)

    def to_json(self) -> dict[str, Any]:
        return {
            "sketch": self.sketch.to_json(),
            "statuses": dict(self.statuses),
            "errors": self.errors,
            "exceptions": dict(self.exceptions),
            "suppressions": dict(self.suppressions),
            "validation_errors": self.validation_errors,
            "validation_examples": self.validation_examples,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SketchTally:
        return cls(
            statuses=Counter({str(k): int(n) for k, n in data["statuses"].items()}),
            errors=int(data["errors"]),
            exceptions=Counter({str(k): int(n) for k, n in data["exceptions"].items()}),
            suppressions=Counter({str(k): int(n) for k, n in data["suppressions"].items()}),
            validation_errors=int(data["validation_errors"]),
            validation_examples=[str(m) for m in data["validation_examples"]],
            sketch=Sketch.from_json(data["sketch"]),
        )


def _example_json(example: Example, raw: bool = False) -> list[Any]:
    if raw:
        return [example.request_id, example.at, example.baseline, example.candidate]
    return [example.request_id, example.at, preview(example.baseline), preview(example.candidate)]


def _example(data: list[Any], raw: bool = False) -> Example:
    request_id, at, baseline, candidate = data
    if raw:
        return Example(str(request_id), str(at), baseline, candidate)
    # Stored as previews already: Opaque keeps preview() from quoting them again.
    return Example(str(request_id), str(at), Opaque(baseline), Opaque(candidate))


def _paths_json(paths: dict[str, PathTally]) -> dict[str, Any]:
    return {
        path: {"count": t.count, "examples": [_example_json(e) for e in t.examples]}
        for path, t in paths.items()
    }


def _merge_paths(mine: dict[str, PathTally], other: dict[str, PathTally], keep: int) -> None:
    for path, tally in other.items():
        held = mine.get(path)
        if held is None:
            held = mine[path] = PathTally()
        held.count += tally.count
        held.examples += tally.examples[: max(0, keep - len(held.examples))]


def _paths(data: dict[str, Any]) -> dict[str, PathTally]:
    return {
        str(path): PathTally(int(t["count"]), [_example(e) for e in t["examples"]])
        for path, t in data.items()
    }


def pairs_json(tally: PairTally) -> dict[str, Any]:
    """A JSON-ready form of a route's :class:`PairTally`."""
    return {
        "pairs": tally.pairs,
        "noise_pairs": tally.noise_pairs,
        "status_mismatches": tally.status_mismatches,
        "noise_status_mismatches": tally.noise_status_mismatches,
        "status_examples": [_example_json(e, raw=True) for e in tally.status_examples],
        "not_compared": tally.not_compared,
        "paths": _paths_json(tally.paths),
        "noise_paths": _paths_json(tally.noise_paths),
        "shapes": [[status, sorted(paths), n] for (status, paths), n in tally.shapes.items()],
    }


def pairs_from_json(data: dict[str, Any], examples: int) -> PairTally:
    """The :class:`PairTally` :func:`pairs_json` wrote."""
    return PairTally(
        examples=examples,
        pairs=int(data["pairs"]),
        noise_pairs=int(data["noise_pairs"]),
        status_mismatches=int(data["status_mismatches"]),
        noise_status_mismatches=int(data["noise_status_mismatches"]),
        status_examples=[_example(e, raw=True) for e in data["status_examples"]],
        not_compared=int(data["not_compared"]),
        paths=_paths(data["paths"]),
        noise_paths=_paths(data["noise_paths"]),
        shapes=Counter(
            {
                (bool(status), frozenset(map(str, paths))): int(n)
                for status, paths, n in data["shapes"]
            }
        ),
    )


def merge_pairs(mine: PairTally, other: PairTally) -> None:
    """Add ``other``'s pairs to ``mine``."""
    mine.pairs += other.pairs
    mine.noise_pairs += other.noise_pairs
    mine.status_mismatches += other.status_mismatches
    mine.noise_status_mismatches += other.noise_status_mismatches
    mine.status_examples += other.status_examples[
        : max(0, mine.examples - len(mine.status_examples))
    ]
    mine.not_compared += other.not_compared
    _merge_paths(mine.paths, other.paths, mine.examples)
    _merge_paths(mine.noise_paths, other.noise_paths, 1)
    mine.shapes.update(other.shapes)


def _key(key: RouteKey) -> str:
    return f"{key[0]} {key[1]}"


def _route(text: str) -> RouteKey:
    method, _, route = text.partition(" ")
    return method, route


@dataclass
class Partial:
    """Tallies over some records and pairs; :meth:`merge` adds another partial."""

    examples: int = 3
    records: int = 0
    by_label: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)
    tallies: dict[RouteKey, dict[str, SketchTally]] = field(default_factory=dict)
    pairs: dict[RouteKey, PairTally] = field(default_factory=dict)
    totals: Totals = field(default_factory=Totals)

    def skip(self, reason: str, where: str) -> None:
        """Count a record that could not be read."""
        self.skipped[reason] += 1
        self.first.setdefault(reason, where)

    def tally(self, key: RouteKey, label: str) -> SketchTally:
        """The tally of ``label`` on route ``key``."""
        by_label = self.tallies.setdefault(key, {})
        found = by_label.get(label)
        if found is None:
            found = by_label[label] = SketchTally()
        return found

    def pair_tally(self, key: RouteKey) -> PairTally:
        """The pair tally of route ``key``."""
        found = self.pairs.get(key)
        if found is None:
            found = self.pairs[key] = PairTally(examples=self.examples)
        return found

    def unpaired(self, role: str, request_id: str, count: int = 1) -> None:
        """Count ``count`` records of ``role`` that found no partner."""
        self.totals.unpaired[role] += count
        examples = self.totals.unpaired_examples.setdefault(role, [])
        if len(examples) < 5 and request_id not in examples:
            examples.append(request_id)

    def merge(self, other: Partial) -> None:
        """Add ``other`` to this partial."""
        self.records += other.records
        self.by_label.update(other.by_label)
        self.skipped.update(other.skipped)
        for reason, where in other.first.items():
            self.first.setdefault(reason, where)
        for key, by_label in other.tallies.items():
            for label, tally in by_label.items():
                self.tally(key, label).merge(tally)
        for key, pair_tally in other.pairs.items():
            merge_pairs(self.pair_tally(key), pair_tally)
        mine, theirs = self.totals, other.totals
        mine.pairs += theirs.pairs
        mine.noise_pairs += theirs.noise_pairs
        mine.generated.update(theirs.generated)
        mine.unpaired.update(theirs.unpaired)
        for role, ids in theirs.unpaired_examples.items():
            examples = mine.unpaired_examples.setdefault(role, [])
            examples += [i for i in ids if i not in examples][: max(0, 5 - len(examples))]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form; :meth:`from_json` reads it back."""
        totals = self.totals
        return {
            "records": self.records,
            "by_label": dict(self.by_label),
            "skipped": dict(self.skipped),
            "first": self.first,
            "tallies": {
                _key(key): {label: t.to_json() for label, t in by_label.items()}
                for key, by_label in self.tallies.items()
            },
            "pairs": {_key(key): pairs_json(t) for key, t in self.pairs.items()},
            "totals": {
                "pairs": totals.pairs,
                "noise_pairs": totals.noise_pairs,
                "unpaired": dict(totals.unpaired),
                "generated": dict(totals.generated),
                "unpaired_examples": totals.unpaired_examples,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], examples: int) -> Partial:
        """The partial :meth:`to_json` wrote; KeyError/TypeError/ValueError when malformed."""
        totals = data["totals"]
        return cls(
            examples=examples,
            records=int(data["records"]),
            by_label=Counter({str(k): int(n) for k, n in data["by_label"].items()}),
            skipped=Counter({str(k): int(n) for k, n in data["skipped"].items()}),
            first={str(k): str(v) for k, v in data["first"].items()},
            tallies={
                _route(key): {str(label): SketchTally.from_json(t) for label, t in by_label.items()}
                for key, by_label in data["tallies"].items()
            },
            pairs={_route(key): pairs_from_json(t, examples) for key, t in data["pairs"].items()},
            totals=Totals(
                int(totals["pairs"]),
                int(totals["noise_pairs"]),
                Counter({str(k): int(n) for k, n in totals["unpaired"].items()}),
                Counter({str(k): int(n) for k, n in totals["generated"].items()}),
                {str(k): [str(i) for i in v] for k, v in totals["unpaired_examples"].items()},
            ),
        )
