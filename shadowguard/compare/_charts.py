"""Inline SVG charts for the HTML page: no script, no external resource, text escaped.

:func:`latency_chart` draws a route's latency by percentile (x: percentile 0-100, y:
milliseconds on a log scale), one line per label, with the P50, P90 and P99 marks;
:func:`ratio_bars` draws each route's candidate/baseline P99 ratio against the flag line.
"""

from __future__ import annotations

import math
from html import escape

from shadowguard.compare._latency import curve

__all__ = ["COLORS", "latency_chart", "ratio_bars"]

#: Line colours by role: baseline, candidate, noise.
COLORS = {"baseline": "#4c78a8", "candidate": "#e45756", "noise": "#54a24b"}
_W, _H = 560, 250
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 14, 12, 34
_FLOOR_MS = 0.001


def _fmt(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:g} s"
    return f"{ms:g} ms"


def _ticks(lo: float, hi: float) -> list[float]:
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    steps = (1, 2, 5) if len(decades) <= 3 else (1,)
    return [s * 10.0**d for d in decades for s in steps if lo <= s * 10.0**d <= hi]


def latency_chart(series: list[tuple[str, str, list[float]]], title: str) -> str:
    """``series``: ``(role, label, ascending durations in ms)``; empty ones are left out."""
    lines = [(role, label, curve(d)) for role, label, d in series if d]
    if not lines:
        return '<p class="empty">no durations</p>'
    values = [max(v, _FLOOR_MS) for _, _, points in lines for v in points]
    lo = 10.0 ** math.floor(math.log10(min(values)))
    hi = 10.0 ** math.ceil(math.log10(max(values)))
    if hi <= lo:
        hi = lo * 10
    width, height = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(p: float) -> float:
        return _LEFT + width * p / 100

    def y(ms: float) -> float:
        span = math.log10(hi) - math.log10(lo)
        return _TOP + height * (1 - (math.log10(max(ms, _FLOOR_MS)) - math.log10(lo)) / span)

    out = [
        f'<svg class="latency-chart" role="img" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{width}" height="{height}" class="plot"/>',
    ]
    for tick in _ticks(lo, hi):
        ty = y(tick)
        out.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + width}" y1="{ty:.1f}" y2="{ty:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 6}" y="{ty + 4:.1f}" class="axis" text-anchor="end">'
            f"{escape(_fmt(tick))}</text>"
        )
    for p in (0, 25, 50, 75, 90, 99):
        px = x(p)
        out.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{_TOP}" y2="{_TOP + height}" class="grid"/>'
            f'<text x="{px:.1f}" y="{_H - _BOTTOM + 16}" class="axis" text-anchor="middle">'
            f"{'min' if p == 0 else f'p{p}'}</text>"
        )
    out.append(
        f'<text x="{x(100) + 2:.1f}" y="{_TOP + 10}" class="axis" text-anchor="end">max</text>'
    )
    for role, label, points in lines:
        path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(points))
        color = COLORS.get(role, "#888")
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2" '
            f'data-label="{escape(label)}"><title>{escape(label)}</title></polyline>'
        )
    for i, (role, label, _) in enumerate(lines):
        lx = _LEFT + 10 + i * 150
        out.append(
            f'<rect x="{lx}" y="{_TOP + 8}" width="12" height="4" fill="{COLORS.get(role, "#888")}"/>'
            f'<text x="{lx + 16}" y="{_TOP + 14}" class="legend">{escape(label[:18])}</text>'
        )
    out.append(
        f'<text x="{_LEFT + width / 2:.0f}" y="{_H - 2}" class="axis" text-anchor="middle">'
        "percentile (x) by latency (y, log scale)</text></svg>"
    )
    return "".join(out)


def ratio_bars(rows: list[tuple[str, float | None, bool]], threshold: float) -> str:
    """``rows``: ``(route name, P99 ratio or None, flagged)``; a bar per route, flag line."""
    shown = [(name, ratio, flagged) for name, ratio, flagged in rows if ratio is not None]
    if not shown:
        return '<p class="empty">no route has durations on both sides</p>'
    top = max(max(r for _, r, _ in shown), threshold) * 1.1
    label_w, bar_w, row_h = 260, 300, 22
    height = row_h * len(shown) + 26
    out = [
        f'<svg class="ratio-chart" role="img" viewBox="0 0 {label_w + bar_w + 70} {height}" '
        f'width="{label_w + bar_w + 70}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        "<title>P99 ratio, candidate over baseline, by route</title>"
    ]
    for i, (name, ratio, flagged) in enumerate(shown):
        ty = 4 + i * row_h
        length = bar_w * ratio / top
        shown_name = name if len(name) <= 38 else name[:37] + "…"
        out.append(
            f'<text x="{label_w - 8}" y="{ty + 14}" class="axis" text-anchor="end">'
            f"{escape(shown_name)}</text>"
            f'<rect x="{label_w}" y="{ty + 3}" width="{length:.1f}" height="{row_h - 8}" '
            f'class="{"bar flagged" if flagged else "bar"}"/>'
            f'<text x="{label_w + length + 6:.1f}" y="{ty + 14}" class="axis">x{ratio:.2f}</text>'
        )
    for mark, css in ((1.0, "one"), (threshold, "threshold")):
        mx = label_w + bar_w * mark / top
        out.append(
            f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="0" y2="{height - 20}" class="{css}"/>'
            f'<text x="{mx:.1f}" y="{height - 6}" class="axis" text-anchor="middle">'
            f"x{mark:g}</text>"
        )
    out.append("</svg>")
    return "".join(out)
