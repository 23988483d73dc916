"""One comparison, start to end: read, join, diff, tally, report, gates."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shadowguard._fieldpaths import IgnoreRules
from shadowguard.compare._diff import Differ
from shadowguard.compare._gates import check_gates
from shadowguard.compare._join import Index, Labels, join, resolve_labels
from shadowguard.compare._options import Options
from shadowguard.compare._report import (
    SCHEMA_VERSION,
    Totals,
    build_route,
    route_order,
    summary,
)
from shadowguard.compare._routes import LabelTally, PairTally, RouteKey, route_of
from shadowguard.compare._sources import open_source

__all__ = ["Progress", "Result", "build_report", "compare"]

#: Called as ``progress(stage, done, total)``: stage ``"read"`` (records; total None) or
#: ``"diff"`` (pairs).
Progress = Callable[[str, int, int | None], None]
_EVERY = 5000


@dataclass
class Result:
    """The report (the JSON document) and each route's sorted durations by label (charts)."""

    report: dict[str, Any]
    durations: dict[RouteKey, dict[str, list[float]]]

    @property
    def passed(self) -> bool:
        """Did every ``--fail-on`` gate hold?"""
        return bool(self.report["gates"]["passed"])


def compare(
    sources: Sequence[str], options: Options | None = None, progress: Progress | None = None
) -> Result:
    """Compare the records stored in ``sources``; :class:`CompareError` if it cannot run."""
    options = options or Options()
    opened = [open_source(spec, options.max_record_bytes) for spec in sources]
    index = Index()
    tallies: dict[RouteKey, dict[str, LabelTally]] = {}
    read = 0
    for source in opened:
        for record in source.records():
            index.add(record)
            by_label = tallies.setdefault(route_of(record), {})
            tally = by_label.get(record["label"])
            if tally is None:
                tally = by_label[record["label"]] = LabelTally()
            tally.add(record)
            read += 1
            if progress is not None and read % _EVERY == 0:
                progress("read", read, None)
    labels = resolve_labels(index.labels, options.baseline, options.candidate, options.noise)
    joined = join(index, labels, options.window)
    differ = Differ(IgnoreRules(options.ignore), frozenset(options.header) or None)
    pairs: dict[RouteKey, PairTally] = {}
    total = len(joined.pairs) + len(joined.noise_pairs)
    done = 0
    for noise, todo in ((False, joined.pairs), (True, joined.noise_pairs)):
        for baseline, other in todo:
            key = route_of(baseline)
            pair_tally = pairs.get(key)
            if pair_tally is None:
                pair_tally = pairs[key] = PairTally(examples=options.examples)
            if noise:
                pair_tally.add_noise_pair(baseline, differ(baseline, other))
            else:
                pair_tally.add_pair(baseline, other, differ(baseline, other))
            done += 1
            if progress is not None and done % _EVERY == 0:
                progress("diff", done, total)
    skipped = sum(sum(s.stats.skipped.values()) for s in opened)
    read_section: dict[str, Any] = {
        "records": read,
        "skipped": skipped,
        "by_label": dict(index.labels.most_common()),
        "sources": [
            {
                "source": s.spec,
                "records": s.stats.records,
                "skipped": dict(s.stats.skipped.most_common()),
                "first": dict(s.stats.first),
            }
            for s in opened
        ],
    }
    report, durations = build_report(
        labels, tallies, pairs, Totals.of(joined), options, read_section
    )
    return Result(report, durations)


def build_report(
    labels: Labels,
    tallies: Mapping[RouteKey, Mapping[str, LabelTally]],
    pairs: Mapping[RouteKey, PairTally],
    totals: Totals,
    options: Options,
    read: dict[str, Any],
    settings: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[RouteKey, dict[str, list[float]]]]:
    """The whole report (gates checked), and each route's ascending durations by label."""
    chosen = {label for _, label in labels.roles()}
    keys = {key for key, by_label in tallies.items() if chosen & by_label.keys()}
    routes: list[dict[str, Any]] = []
    durations: dict[RouteKey, dict[str, list[float]]] = {}
    for key in keys:
        route, durations[key] = build_route(
            key, labels, tallies[key], pairs.get(key) or PairTally(), options
        )
        routes.append(route)
    routes.sort(key=route_order)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "labels": {role: getattr(labels, role) for role in ("baseline", "candidate", "noise")},
        "settings": {
            "window_seconds": options.window,
            "ignore": list(options.ignore),
            "headers": list(options.header) or None,
            "noise_relative": options.noise_relative,
            "noise_absolute": options.noise_absolute,
            "p99_ratio": options.p99_ratio,
            "min_count": options.min_count,
            **(settings or {}),
        },
        "read": read,
        **summary(labels, totals, routes),
        "routes": routes,
    }
    report["gates"] = check_gates(report, labels, options)
    return report, durations
