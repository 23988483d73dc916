"""Mirror N requests to a primary and a shadow order service, then check and report.

Requests go out the way a mirroring proxy sends them: the same ``x-request-id`` to both,
the shadow copy with ``-shadow`` appended to the Host before the port, the primary first.
In-process, each primary request is answered, then its shadow copy runs, one request at a
time: the shadow's transaction (holding SQLite's write lock) is rolled back before the next
primary request writes. The --envoy mode (``shadowguard.demo.envoy``) sends them through a
real Envoy to two uvicorn processes instead.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from shadowguard.demo import app as service

HOST = "orders.demo:8000"
SHADOW_HOST = "orders.demo-shadow:8000"
SKUS = ("tea", "coffee", "cocoa", "mate")
INVALID_EVERY = 10  # one request in ten asks for quantity 0: the database rejects it


@dataclass(frozen=True)
class Request:
    request_id: str
    body: bytes
    valid: bool


def requests(n: int) -> Iterator[Request]:
    """The demo's traffic: deterministic, one request in ``INVALID_EVERY`` invalid."""
    for i in range(n):
        valid = i % INVALID_EVERY != INVALID_EVERY - 1
        quantity = i % 3 + 1 if valid else 0
        body = json.dumps({"sku": SKUS[i % len(SKUS)], "quantity": quantity}).encode()
        yield Request(f"demo-{i + 1:05d}", body, valid)


class Progress:
    """A one-line progress bar on a terminal; silent when the stream is not a TTY."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.done = 0

    def advance(self) -> None:
        self.done += 1
        if self.enabled and (self.done == self.total or self.done % max(1, self.total // 50) == 0):
            filled = 30 * self.done // self.total
            bar = "#" * filled + "." * (30 - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


async def _call(app: service.ASGIApp, host: str, request: Request) -> int:
    headers = [
        (b"host", host.encode()),
        (b"x-request-id", request.request_id.encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(request.body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/orders",
        "raw_path": b"/orders",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": request.body, "more_body": False}

    async def send(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def run_in_process(folder: Path, n: int, *, guard: bool, progress: Progress) -> dict[str, Any]:
    """Both sides in this process, called directly through ASGI; returns the raw stats."""
    service.create_schema(folder)
    primary, primary_stats = service.build_app(folder, "primary", guard=guard)
    shadow, shadow_stats = service.build_app(folder, "shadow", guard=guard)

    async def mirror() -> None:
        for request in requests(n):
            await _call(primary, HOST, request)
            await _call(shadow, SHADOW_HOST, request)
            progress.advance()

    asyncio.run(mirror())
    return {"primary": primary_stats.to_dict(), "shadow": shadow_stats.to_dict()}


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return round(ordered[index] * 1000, 3)


def _count_lines(path: Path, side: str) -> int:
    if not path.exists():
        return 0
    with path.open(encoding="utf-8") as file:
        return sum(1 for line in file if json.loads(line)["served_by"] == side)


def build_report(
    folder: Path,
    n: int,
    stats: dict[str, Any],
    *,
    mode: str,
    guard: bool,
    kept: bool = True,
) -> dict[str, Any]:
    """Count what each side left behind (a separate sqlite3 connection) and judge it."""
    expected = {r.request_id for r in requests(n) if r.valid}
    valid = len(expected)
    connection = sqlite3.connect(folder / service.DATABASE)
    try:
        rows = dict(connection.execute("SELECT served_by, count(*) FROM orders GROUP BY 1"))
        stored = connection.execute("SELECT request_id FROM orders WHERE served_by = 'primary'")
        missing = expected - {request_id for (request_id,) in stored}
    finally:
        connection.close()
    report: dict[str, Any] = {
        "mode": mode,
        "guard": guard,
        "requests": n,
        "valid_requests": valid,
        "invalid_requests": n - valid,
        "folder": str(folder),
        "folder_kept": kept,
    }
    for side in ("primary", "shadow"):
        seen = stats[side]
        report[side] = {
            "requests": seen["requests"],
            "statuses": seen["statuses"],
            "rows": rows.get(side, 0),
            "charges": _count_lines(folder / service.PAYMENTS, side),
            "events": _count_lines(folder / service.EVENTS, side),
            "latency_ms": {
                "p50": _percentile(seen["latencies"], 0.50),
                "p99": _percentile(seen["latencies"], 0.99),
            },
        }
    shadow_stats = stats["shadow"]
    report["suppressed"] = shadow_stats["suppressed"]
    errors: dict[str, int] = shadow_stats["validation_errors"]
    report["validation_errors"] = {"count": sum(errors.values()), "by_error": errors}
    problems = []
    primary, shadow = report["primary"], report["shadow"]
    for what in ("rows", "charges", "events"):
        if shadow[what]:
            problems.append(f"the shadow left {shadow[what]} {what} behind")
        if primary[what] != valid:
            problems.append(f"the primary has {primary[what]} {what}, expected {valid}")
    if missing:
        problems.append(
            f"the primary lost {len(missing)} valid orders: {', '.join(sorted(missing)[:5])}"
        )
    for side in ("primary", "shadow"):
        if report[side]["requests"] != n:
            problems.append(f"the {side} answered {report[side]['requests']} of {n} requests")
    report["problems"] = problems
    report["ok"] = not problems
    return report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(report: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    p, s = report["primary"], report["shadow"]
    guard = "guarded" if report["guard"] else "WITHOUT the guard (--no-guard)"
    lines = [
        f"shadowguard demo: {report['requests']} requests mirrored {report['mode']}, {guard}",
        f"  {report['valid_requests']} valid, {report['invalid_requests']} rejected by the "
        "database (quantity 0)",
        f"  one SQLite file shared by both sides, in {report['folder']}"
        + ("" if report["folder_kept"] else " (deleted; keep it with --dir)"),
        "",
        f"  {'':<26}{'primary':>10}{'shadow':>10}",
    ]

    def row(label: str, primary: Any, shadow: Any) -> None:
        lines.append(f"  {label:<26}{primary!s:>10}{shadow!s:>10}")

    row("requests answered", p["requests"], s["requests"])
    for status in sorted(set(p["statuses"]) | set(s["statuses"])):
        row(f"  status {status}", p["statuses"].get(status, 0), s["statuses"].get(status, 0))
    row("rows persisted", p["rows"], s["rows"])
    row("cards charged", p["charges"], s["charges"])
    row("events published", p["events"], s["events"])
    for stat in ("p50", "p99"):
        row(f"latency {stat.upper()} (ms)", *(_ms(side["latency_ms"][stat]) for side in (p, s)))
    lines.append("")
    suppressed = ", ".join(f"{k} {v}" for k, v in report["suppressed"].items()) or "none"
    lines.append(f"  suppressed in the shadow: {suppressed}")
    errors = report["validation_errors"]
    lines.append(f"  validation errors the shadow would have hit: {errors['count']}")
    for message, count in errors["by_error"].items():
        lines.append(f"    {count} x {message}")
    lines.append("")
    if report["ok"]:
        lines.append(
            f"OK: the shadow persisted nothing; the primary kept all {report['valid_requests']} "
            "orders."
        )
    else:
        lines.extend(f"FAIL: {problem}" for problem in report["problems"])
        if not report["guard"]:
            lines.append(
                "Without the guard the shadow duplicates every order, charge and event: "
                "run again without --no-guard."
            )
    return "\n".join(lines)
