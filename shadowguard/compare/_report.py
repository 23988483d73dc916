"""The report: per-route tallies turned into the documented JSON structure, worst route first.

Noise cancellation (Diffy's idea, thresholds of our own): with a noise side, a path that
differs in ``c`` of the candidate pairs of a route (as a fraction) and in ``n`` of the noise
pairs of that route is reported only when ``c - n > noise_absolute`` and
``(c - n) / c > noise_relative``; otherwise it is listed under ``noise_suppressed``. A route
without noise pairs reports every differing path. The structure itself is
``report.schema.json``, next to this module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shadowguard.compare._diff import preview
from shadowguard.compare._join import Joined, Labels
from shadowguard.compare._options import Options
from shadowguard.compare._routes import LabelTally, PairTally, PathTally, RouteKey

__all__ = [
    "SCHEMA_VERSION",
    "Totals",
    "build_route",
    "is_noise",
    "p99_exceeds",
    "route_order",
    "summary",
]

SCHEMA_VERSION = 1
_STATS = ("p50", "p90", "p99", "max")


def is_noise(c: float, n: float, options: Options) -> bool:
    """Is a difference rate ``c`` explained by the noise rate ``n``? (both fractions)"""
    return not (c - n > options.noise_absolute and (c - n) / c > options.noise_relative)


def _rate(count: int, total: int) -> float | None:
    return round(count / total, 6) if total else None


def _ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or bottom is None or bottom <= 0:
        return None
    return round(top / bottom, 4)


def _ratios(top: dict[str, Any] | None, bottom: dict[str, Any] | None) -> dict[str, Any] | None:
    if not top or not bottom or not top["count"] or not bottom["count"]:
        return None
    return {stat: _ratio(top[stat], bottom[stat]) for stat in _STATS}


def p99_exceeds(route: dict[str, Any], labels: Labels, threshold: float, min_count: int) -> bool:
    """Candidate P99 over ``threshold`` times the baseline's, on enough records.

    With a noise side that has enough records on the route, the candidate must also be over
    ``threshold`` times the noise side's P99: a slowdown the old code shows on the shadow
    side too (a slower machine, the guard's rollbacks) is not the candidate's.
    """
    latency = route["latency"]
    base, cand = latency.get(labels.baseline), latency.get(labels.candidate)
    if not base or not cand or min(base["count"], cand["count"]) < min_count:
        return False
    ratio = _ratio(cand["p99"], base["p99"])
    if ratio is None or ratio <= threshold:
        return False
    noise = latency.get(labels.noise) if labels.noise else None
    if noise and noise["count"] >= min_count:
        to_noise = _ratio(cand["p99"], noise["p99"])
        return to_noise is None or to_noise > threshold
    return True


def _values(tally: PathTally) -> list[dict[str, str]]:
    return [
        {
            "request_id": e.request_id,
            "at": e.at,
            "baseline": preview(e.baseline),
            "candidate": preview(e.candidate),
        }
        for e in tally.examples
    ]


def _diffs(
    pairs: PairTally, options: Options
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str]]:
    """Reported paths, paths suppressed as noise, and the reported paths' names."""
    reported: list[dict[str, Any]] = []
    suppressed: list[dict[str, Any]] = []
    kept: set[str] = set()
    for path, tally in pairs.paths.items():
        c = tally.count / pairs.pairs
        entry: dict[str, Any] = {"path": path, "count": tally.count, "rate": round(c, 6)}
        if pairs.noise_pairs:
            noise = pairs.noise_paths.get(path)
            n_count = noise.count if noise else 0
            n = n_count / pairs.noise_pairs
            entry |= {"noise": n_count, "noise_rate": round(n, 6)}
            if is_noise(c, n, options):
                suppressed.append(entry)
                continue
        else:
            entry |= {"noise": None, "noise_rate": None}
        entry["examples"] = [e.request_id for e in tally.examples]
        entry["values"] = _values(tally)
        reported.append(entry)
        kept.add(path)
    reported.sort(key=lambda d: (-d["count"], d["path"]))
    suppressed.sort(key=lambda d: (-d["count"], d["path"]))
    return reported, suppressed, kept


def build_route(
    key: RouteKey,
    labels: Labels,
    tallies: Mapping[str, LabelTally],
    pairs: PairTally,
    options: Options,
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """One entry of ``routes[]``, and each label's sorted durations (for the charts)."""
    method, template = key
    durations: dict[str, list[float]] = {}
    latency: dict[str, Any] = {}
    for _, label in labels.roles():
        tally = tallies.get(label) or LabelTally()
        latency[label] = tally.latency()
        durations[label] = tally.ordered()
    diffs, suppressed, kept = _diffs(pairs, options)
    differing = sum(
        n for (status, paths), n in pairs.shapes.items() if status or not paths.isdisjoint(kept)
    )
    base, cand = labels.baseline, labels.candidate
    error_rate = {
        label: _rate(t.errors, t.count) if (t := tallies.get(label)) else None
        for _, label in labels.roles()
    }
    base_errors, cand_errors = error_rate[base], error_rate[cand]
    change = None
    if base_errors is not None and cand_errors is not None:
        change = round(cand_errors - base_errors, 6)
    route: dict[str, Any] = {
        "method": method,
        "route": template,
        "pairs": pairs.pairs,
        "noise_pairs": pairs.noise_pairs,
        "differing_pairs": differing,
        "diff_rate": _rate(differing, pairs.pairs),
        "status_mismatches": pairs.status_mismatches,
        "noise_status_mismatches": pairs.noise_status_mismatches if labels.noise else None,
        "status_examples": [
            {"request_id": e.request_id, "baseline": e.baseline, "candidate": e.candidate}
            for e in pairs.status_examples
        ],
        "bodies_not_compared": pairs.not_compared,
        "diffs": diffs,
        "noise_suppressed": suppressed,
        "latency": latency,
        "latency_ratio": _ratios(latency[cand], latency[base]),
        "latency_ratio_to_noise": _ratios(latency[cand], latency[labels.noise])
        if labels.noise
        else None,
        "latency_flagged": False,
        "status": {},
        "error_rate": error_rate,
        "error_rate_change": change,
        "exceptions": {},
        "suppressions": {},
        "validation_errors": {},
    }
    route["latency_flagged"] = p99_exceeds(route, labels, options.p99_ratio, options.min_count)
    for _, label in labels.roles():
        tally = tallies.get(label) or LabelTally()
        route["status"][label] = dict(sorted(tally.statuses.items()))
        route["exceptions"][label] = dict(tally.exceptions.most_common())
        route["suppressions"][label] = dict(sorted(tally.suppressions.items()))
        route["validation_errors"][label] = {
            "count": tally.validation_errors,
            "examples": list(tally.validation_examples),
        }
    return route, durations


def route_order(route: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key, worst first: any finding, then diff rate, then P99 ratio, then name."""
    ratio = (route["latency_ratio"] or {}).get("p99") or 0.0
    finding = bool(
        route["latency_flagged"]
        or route["diffs"]
        or route["status_mismatches"]
        or (route["error_rate_change"] or 0) > 0
    )
    return (not finding, -(route["diff_rate"] or 0.0), -ratio, route["route"], route["method"])


@dataclass
class Totals:
    """Pairs and unpaired records over all routes, by role."""

    pairs: int = 0
    noise_pairs: int = 0
    unpaired: Counter[str] = field(default_factory=Counter)
    generated: Counter[str] = field(default_factory=Counter)
    unpaired_examples: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, joined: Joined) -> Totals:
        return cls(
            len(joined.pairs),
            len(joined.noise_pairs),
            joined.unpaired,
            joined.generated,
            joined.unpaired_examples,
        )


def summary(labels: Labels, totals: Totals, routes: list[dict[str, Any]]) -> dict[str, Any]:
    """The top-level counts over all routes."""
    roles = [role for role, _ in labels.roles()]
    return {
        "pairs": totals.pairs,
        "noise_pairs": totals.noise_pairs,
        "unpaired": {role: totals.unpaired[role] for role in roles},
        "generated_ids": {role: totals.generated[role] for role in roles},
        "unpaired_examples": {role: totals.unpaired_examples.get(role, []) for role in roles},
        "differing_pairs": sum(r["differing_pairs"] for r in routes),
        "status_mismatches": sum(r["status_mismatches"] for r in routes),
    }
