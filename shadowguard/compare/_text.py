"""The terminal summary: what changed, worst route first, in a few lines per route."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["render_text"]

#: Routes listed in full; the rest (all without findings, as routes are worst first) as a count.
ROUTES_SHOWN = 30
PATHS_SHOWN = 10
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def safe(text: object, limit: int = 120) -> str:
    """Untrusted text for a terminal: control characters escaped, cut at ``limit``."""
    clean = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _per_label(mapping: dict[str, Any], show: Any) -> str:
    parts = [f"{safe(label, 40)} {show(value)}" for label, value in mapping.items() if value]
    return "; ".join(parts)


def _route(route: dict[str, Any], labels: dict[str, Any]) -> list[str]:
    base, cand = labels["baseline"], labels["candidate"]
    head = f"{safe(route['method'], 16)} {safe(route['route'])}: {route['pairs']} pairs"
    if route["pairs"]:
        head += f", {route['differing_pairs']} differ ({_pct(route['diff_rate'])})"
    ratio = route["latency_ratio"] or {}
    if route["latency_flagged"]:
        before, after = route["latency"][base]["p99"], route["latency"][cand]["p99"]
        head += f"  SLOWER: p99 x{ratio['p99']:.2f} ({_ms(before)} -> {_ms(after)} ms)"
    elif ratio.get("p99") is not None:
        head += f", p99 x{ratio['p99']:.2f}"
    lines = [head]
    for diff in route["diffs"][:PATHS_SHOWN]:
        noise = (
            "" if diff["noise"] is None else f", noise {diff['noise']} ({_pct(diff['noise_rate'])})"
        )
        example = diff["values"][0]
        lines.append(
            f"  {safe(diff['path'], 60)}: {diff['count']} pairs ({_pct(diff['rate'])}){noise}; "
            f"e.g. {safe(example['request_id'], 40)}: {safe(example['baseline'], 50)} -> "
            f"{safe(example['candidate'], 50)}"
        )
    if len(route["diffs"]) > PATHS_SHOWN:
        lines.append(f"  ... and {len(route['diffs']) - PATHS_SHOWN} more differing paths")
    if route["status_mismatches"]:
        e = route["status_examples"][0]
        lines.append(
            f"  status: {route['status_mismatches']} pairs; e.g. {safe(e['request_id'], 40)}: "
            f"{e['baseline']} -> {e['candidate']}"
        )
    change = route["error_rate_change"]
    if change:
        rates = route["error_rate"]
        lines.append(
            f"  errors: {safe(cand, 40)} {_pct(rates[cand])} vs {safe(base, 40)} "
            f"{_pct(rates[base])} ({change:+.1%})"
        )
    if route["noise_suppressed"]:
        names = ", ".join(safe(d["path"], 40) for d in route["noise_suppressed"][:5])
        more = len(route["noise_suppressed"]) - 5
        lines.append(f"  noise (not reported): {names}" + (f" and {more} more" if more > 0 else ""))
    suppressions = _per_label(
        route["suppressions"], lambda s: ", ".join(f"{safe(k, 30)} {n}" for k, n in s.items())
    )
    if suppressions:
        lines.append(f"  suppressed side effects: {suppressions}")
    validation = _per_label(
        {k: v for k, v in route["validation_errors"].items() if v["count"]},
        lambda v: f"{v['count']} (e.g. {safe(v['examples'][0], 60)})",
    )
    if validation:
        lines.append(f"  validation errors: {validation}")
    if route["bodies_not_compared"]:
        lines.append(
            f"  bodies not compared (over the capture bound): {route['bodies_not_compared']}"
        )
    for label, stats in route["latency"].items():
        if stats["count"]:
            lines.append(
                f"  latency {safe(label, 20)}: n={stats['count']} p50 {_ms(stats['p50'])} "
                f"p90 {_ms(stats['p90'])} p99 {_ms(stats['p99'])} max {_ms(stats['max'])} ms"
            )
    return lines


def render_text(report: dict[str, Any]) -> str:
    """The summary printed by ``shadowguard compare`` without ``--json``."""
    labels = report["labels"]
    read = report["read"]
    noise = f", noise {safe(labels['noise'], 40)}" if labels["noise"] else ", no noise side"
    lines = [
        f"shadowguard compare: {safe(labels['baseline'], 40)} (baseline) vs "
        f"{safe(labels['candidate'], 40)} (candidate){noise}"
    ]
    skipped = ""
    if read["skipped"]:
        reasons: dict[str, int] = {}
        for source in read["sources"]:
            for reason, n in source["skipped"].items():
                reasons[reason] = reasons.get(reason, 0) + n
        skipped = f"; skipped {read['skipped']}: " + ", ".join(
            f"{n} {safe(reason, 60)}" for reason, n in reasons.items()
        )
    lines.append(f"read {read['records']} records from {len(read['sources'])} source(s){skipped}")
    unpaired = ", ".join(
        f"{safe(labels[role], 40)} {n}"
        + (
            f" ({report['generated_ids'][role]} with a generated id)"
            if report["generated_ids"][role]
            else ""
        )
        for role, n in report["unpaired"].items()
    )
    pairs = report["pairs"]
    share = f" ({report['differing_pairs'] / pairs:.1%})" if pairs else ""
    lines.append(f"{pairs} pairs, {report['differing_pairs']} differ{share}; unpaired: {unpaired}")
    quiet: list[str] = []
    for route in report["routes"][:ROUTES_SHOWN]:
        finding = (
            route["latency_flagged"]
            or route["diffs"]
            or route["status_mismatches"]
            or (route["error_rate_change"] or 0) > 0
        )
        if finding:
            lines.append("")
            lines += _route(route, labels)
        else:
            quiet.append(f"{safe(route['method'], 16)} {safe(route['route'], 60)}")
    if quiet:
        lines += ["", f"no difference on {len(quiet)} route(s): " + ", ".join(quiet)]
    hidden = len(report["routes"]) - ROUTES_SHOWN
    if hidden > 0:
        lines.append(f"... and {hidden} more routes (see --json or --html)")
    gates = report["gates"]
    if gates["thresholds"]:
        given = ", ".join(f"{k}={v:g}" for k, v in gates["thresholds"].items())
        lines.append("")
        lines.append(f"gates ({given}): " + ("passed" if gates["passed"] else "FAILED"))
        lines += [f"  {safe(failure, 200)}" for failure in gates["failures"]]
    return "\n".join(lines)
