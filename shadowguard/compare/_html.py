"""The ``--html`` page: one self-contained file, readable offline and safe to open.

Everything a capture holds is untrusted (bodies, paths, request ids, labels), so every piece
of text is HTML-escaped, and a Content-Security-Policy forbids scripts and every network
fetch even if something slipped through. Styles and charts (:mod:`._charts`) are inline.
"""

from __future__ import annotations

from html import escape
from typing import Any

from shadowguard.compare._charts import COLORS, latency_chart, ratio_bars
from shadowguard.compare._routes import RouteKey

__all__ = ["render_html"]

ROUTES_SHOWN = 50
PATHS_SHOWN = 15
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header,section{margin:0 auto;max-width:1180px;padding:12px 24px}
header{border-bottom:1px solid #d8dce3;background:#fff;max-width:none}
h1{font-size:20px;margin:6px 0}h2{font-size:17px;margin:8px 0}h3{font-size:14px;margin:12px 0 4px}
.route{background:#fff;border:1px solid #d8dce3;border-radius:6px;margin:14px auto}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{border-bottom:1px solid #e4e7ec;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{margin:0;white-space:pre-wrap;word-break:break-all;font:12px/1.35 ui-monospace,monospace;
max-height:9em;overflow:auto}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;margin-left:6px;font-size:12px}
.bad{background:#fde2e1;color:#9b1c1c}.ok{background:#e3f4e1;color:#1e6a1a}
.warn{background:#fff1d6;color:#7a4b00}
.charts{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.plot{fill:#fbfbfd;stroke:#c9ced6}.grid{stroke:#e4e7ec}.axis,.legend{font-size:11px;fill:#4a5263}
.bar{fill:#4c78a8}.bar.flagged{fill:#e45756}.one{stroke:#888;stroke-dasharray:2 3}
.threshold{stroke:#e45756;stroke-dasharray:5 3}
.baseline{background:#eef3f9}.candidate{background:#fcefee}
.empty{color:#6b7280}details{margin:6px 0}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _badges(route: dict[str, Any]) -> str:
    out = []
    if route["latency_flagged"]:
        out.append(
            f'<span class="badge bad">slower: p99 x{route["latency_ratio"]["p99"]:.2f}</span>'
        )
    if route["diffs"]:
        out.append(f'<span class="badge bad">{len(route["diffs"])} differing fields</span>')
    if route["status_mismatches"]:
        out.append(f'<span class="badge bad">{route["status_mismatches"]} status mismatches</span>')
    if (route["error_rate_change"] or 0) > 0:
        out.append(f'<span class="badge warn">errors {route["error_rate_change"]:+.1%}</span>')
    return "".join(out) or '<span class="badge ok">no difference</span>'


def _latency_table(route: dict[str, Any], roles: dict[str, str]) -> str:
    rows = []
    for role, label in roles.items():
        s = route["latency"][label]
        rows.append(
            f'<tr><td><span style="color:{COLORS[role]}">&#9632;</span> {_e(label)}</td>'
            f'<td class="num">{s["count"]}</td><td class="num">{_ms(s["p50"])}</td>'
            f'<td class="num">{_ms(s["p90"])}</td><td class="num">{_ms(s["p99"])}</td>'
            f'<td class="num">{_ms(s["max"])}</td>'
            f'<td class="num">{_pct(route["error_rate"][label])}</td></tr>'
        )
    ratio = route["latency_ratio"]
    if ratio:
        rows.append(
            "<tr><td>candidate / baseline</td><td></td>"
            + "".join(
                f'<td class="num">{"-" if ratio[s] is None else f"x{ratio[s]:.2f}"}</td>'
                for s in ("p50", "p90", "p99", "max")
            )
            + "<td></td></tr>"
        )
    return (
        '<table class="latency"><tr><th>label</th><th>count</th><th>p50 ms</th><th>p90 ms</th>'
        "<th>p99 ms</th><th>max ms</th><th>errors</th></tr>" + "".join(rows) + "</table>"
    )


def _diffs(route: dict[str, Any], labels: dict[str, Any]) -> str:
    if not route["diffs"]:
        return ""
    rows = []
    for diff in route["diffs"][:PATHS_SHOWN]:
        noise = "-" if diff["noise"] is None else f"{diff['noise']} ({_pct(diff['noise_rate'])})"
        examples = "".join(
            f'<tr class="example"><td><code class="request-id">{_e(v["request_id"])}</code>'
            f"<br><small>{_e(v['at'])}</small></td>"
            f'<td class="baseline"><pre>{_e(v["baseline"])}</pre></td>'
            f'<td class="candidate"><pre>{_e(v["candidate"])}</pre></td></tr>'
            for v in diff["values"]
        )
        rows.append(
            f'<tr class="diff"><td><code class="diff-path">{_e(diff["path"])}</code></td>'
            f'<td class="num">{diff["count"]} ({_pct(diff["rate"])})</td>'
            f'<td class="num">{_e(noise)}</td><td>'
            f'<table class="examples"><tr><th>request id</th><th>{_e(labels["baseline"])}</th>'
            f"<th>{_e(labels['candidate'])}</th></tr>{examples}</table></td></tr>"
        )
    more = len(route["diffs"]) - PATHS_SHOWN
    tail = f'<p class="empty">and {more} more differing paths (see --json)</p>' if more > 0 else ""
    return (
        '<h3>Differing fields</h3><table class="diffs"><tr><th>path</th><th>pairs</th>'
        "<th>noise</th><th>examples: both values side by side</th></tr>"
        + "".join(rows)
        + "</table>"
        + tail
    )


def _extras(route: dict[str, Any]) -> str:
    out = []
    if route["status_examples"]:
        items = ", ".join(
            f"<code>{_e(e['request_id'])}</code>: {_e(e['baseline'])} &rarr; {_e(e['candidate'])}"
            for e in route["status_examples"]
        )
        out.append(f"<p>Status mismatches: {route['status_mismatches']} (e.g. {items})</p>")
    if route["noise_suppressed"]:
        items = "".join(
            f"<li><code>{_e(d['path'])}</code>: {d['count']} ({_pct(d['rate'])}), "
            f"noise {d['noise']} ({_pct(d['noise_rate'])})</li>"
            for d in route["noise_suppressed"]
        )
        out.append(
            f"<details><summary>{len(route['noise_suppressed'])} fields differ as much between "
            f"baseline and noise (not reported)</summary><ul>{items}</ul></details>"
        )
    for label, kinds in route["suppressions"].items():
        if kinds:
            text = ", ".join(f"{_e(k)} {n}" for k, n in kinds.items())
            out.append(f"<p>Suppressed side effects ({_e(label)}): {text}</p>")
    for label, errors in route["validation_errors"].items():
        if errors["count"]:
            text = "".join(f"<li><pre>{_e(m)}</pre></li>" for m in errors["examples"])
            out.append(f"<p>Validation errors ({_e(label)}): {errors['count']}</p><ul>{text}</ul>")
    return "".join(out)


def _route(
    i: int, route: dict[str, Any], labels: dict[str, Any], durations: dict[str, list[float]]
) -> str:
    roles = {role: labels[role] for role in ("baseline", "candidate", "noise") if labels[role]}
    name = f"{route['method']} {route['route']}"
    chart = latency_chart(
        [(role, label, durations.get(label, [])) for role, label in roles.items()], name
    )
    return (
        f'<section class="route" id="route-{i}" data-route="{_e(name)}">'
        f"<h2>{_e(name)}{_badges(route)}</h2>"
        f"<p>{route['pairs']} pairs, {route['differing_pairs']} differ ({_pct(route['diff_rate'])})"
        f'</p><div class="charts">{chart}<div>{_latency_table(route, roles)}</div></div>'
        f"{_diffs(route, labels)}{_extras(route)}</section>"
    )


def _overview(report: dict[str, Any]) -> str:
    rows = []
    for i, route in enumerate(report["routes"][:ROUTES_SHOWN]):
        ratio = (route["latency_ratio"] or {}).get("p99")
        rows.append(
            f'<tr><td><a href="#route-{i}">{_e(route["method"])} {_e(route["route"])}</a></td>'
            f'<td class="num">{route["pairs"]}</td><td class="num">{_pct(route["diff_rate"])}</td>'
            f'<td class="num">{route["status_mismatches"]}</td>'
            f'<td class="num">{"-" if ratio is None else f"x{ratio:.2f}"}</td>'
            f'<td class="num">{_pct(route["error_rate_change"])}</td><td>{_badges(route)}</td></tr>'
        )
    bars = ratio_bars(
        [
            (
                f"{r['method']} {r['route']}",
                (r["latency_ratio"] or {}).get("p99"),
                r["latency_flagged"],
            )
            for r in report["routes"][:ROUTES_SHOWN]
        ],
        report["settings"]["p99_ratio"],
    )
    return (
        '<section id="overview"><h2>Routes, worst first</h2><table class="routes"><tr>'
        "<th>route</th><th>pairs</th><th>differ</th><th>status mismatches</th><th>p99 ratio</th>"
        "<th>error rate change</th><th></th></tr>" + "".join(rows) + "</table>"
        f"<h3>P99 latency, candidate over baseline</h3>{bars}</section>"
    )


def _read(report: dict[str, Any]) -> str:
    labels = report["labels"]
    rows = "".join(
        f'<tr><td>{_e(s["source"])}</td><td class="num">{s["records"]}</td><td>'
        + "<br>".join(
            f"{n} {_e(reason)} (first: {_e(s['first'].get(reason, ''))})"
            for reason, n in s["skipped"].items()
        )
        + "</td></tr>"
        for s in report["read"]["sources"]
    )
    unpaired = ", ".join(f"{_e(labels[role])} {n}" for role, n in report["unpaired"].items())
    return (
        '<section id="read"><h2>What was read</h2><table><tr><th>source</th><th>records</th>'
        f"<th>skipped</th></tr>{rows}</table><p>Unpaired: {unpaired}</p></section>"
    )


def render_html(report: dict[str, Any], durations: dict[RouteKey, dict[str, list[float]]]) -> str:
    """The whole page for ``report``, with each route's durations (by label) for its chart."""
    labels = report["labels"]
    title = f"shadowguard compare: {labels['baseline']} vs {labels['candidate']}"
    noise = f", noise side {_e(labels['noise'])}" if labels["noise"] else ", no noise side"
    gates = report["gates"]
    verdict = ""
    if gates["thresholds"]:
        css, word = ("ok", "gates passed") if gates["passed"] else ("bad", "gates failed")
        fails = "".join(f"<li>{_e(f)}</li>" for f in gates["failures"])
        verdict = f'<p><span class="badge {css}">{word}</span></p><ul>{fails}</ul>'
    pairs = report["pairs"]
    share = f" ({report['differing_pairs'] / pairs:.1%})" if pairs else ""
    routes = "".join(
        _route(i, route, labels, durations.get((route["method"], route["route"]), {}))
        for i, route in enumerate(report["routes"][:ROUTES_SHOWN])
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>{_e(title)}</h1><p class="summary">baseline {_e(labels["baseline"])}, '
        f"candidate {_e(labels['candidate'])}{noise}: {pairs} pairs, "
        f"{report['differing_pairs']} differ{share}, {report['status_mismatches']} status "
        f"mismatches; {report['read']['records']} records read, {report['read']['skipped']} "
        f"skipped</p>{verdict}</header>"
        f"{_overview(report)}{routes}{_read(report)}</body></html>"
    )
