"""Per-request telemetry alone, and where the SDK's cost goes: the collection.

With the SDK configured, the middleware's measurement is queued; the SDK records it when
its reader collects. The note at the end says what that costs per request, next to one
SDK ``Histogram.record()`` on the request path (what it cost before).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from opentelemetry import metrics

from benchmarks._harness import QUICK, Harness, fmt_ns
from shadowguard import telemetry
from shadowguard.contract import Kind, Suppression

SUPPRESSION = Suppression(Kind.CALL, "notify", {"operation": "call", "action": "suppressed"})


def nothing() -> None:
    return None


def run(h: Harness) -> None:
    # With the SDK every measurement queued while sampling is handed over between samples
    # (about 20 us each): sample these 0.2 us calls for less time than the default, and
    # keep one sample under telemetry.MAX_PENDING calls (past it a request records at
    # the SDK's price, which is what a reader that never collects costs, not this path).
    saved = h.fast_seconds_per_side, h.fast_sample_seconds
    h.fast_seconds_per_side = min(saved[0], 0.1)
    h.fast_sample_seconds = min(saved[1], 0.0005)
    try:
        _compare(h)
    finally:
        h.fast_seconds_per_side, h.fast_sample_seconds = saved
    if h.sdk and h.between_samples is not None:
        _hand_over(h)


def _compare(h: Harness) -> None:
    h.compare(
        "telemetry of one request (info)",
        nothing,
        lambda: telemetry.request_served(0.004, False, "/orders/{id}", 200),
        fastest=True,
    )
    h.compare(
        "telemetry of one suppression, no span (info)",
        nothing,
        lambda: telemetry.record_suppression(SUPPRESSION),
        fastest=True,
    )


def _hand_over(h: Harness) -> None:
    n = 5_000 if QUICK else 20_000
    collect = h.between_samples
    assert collect is not None
    histogram = metrics.get_meter("benchmarks").create_histogram("benchmarks.direct", unit="s")
    attributes: dict[str, Any] = {
        "shadow": False,
        "http.route": "/orders/{id}",
        "http.response.status_code": 200,
    }
    handed, direct = [], []
    for _ in range(5):
        collect()
        for i in range(n):
            telemetry.request_served(0.001 * (i % 50), i % 3 == 0, "/orders/{id}", 200)
        start = time.perf_counter()
        collect()
        handed.append((time.perf_counter() - start) / n * 1e9)
        start = time.perf_counter()
        for i in range(n):
            histogram.record(0.001 * (i % 50), attributes)
        direct.append((time.perf_counter() - start) / n * 1e9)
    h.note(
        f"at collection, per queued request: {fmt_ns(statistics.median(handed))} "
        f"(one SDK Histogram.record() on the request path: {fmt_ns(statistics.median(direct))})"
    )
