"""Memory stays flat over 100,000 shadow requests.

Counted with ``sys.getallocatedblocks()`` (tracemalloc would make this test 20 times
slower; ``benchmarks/bench_middleware.py`` measures the same with tracemalloc). The test
SDK's metric reader collects before each count, as a service's reader does periodically:
measurements wait for the SDK's next collection (bounded, see ``tests/test_telemetry.py``).
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from benchmarks.bench_middleware import asgi_app, asgi_caller, wsgi_app, wsgi_caller
from shadowguard.middleware.asgi import ShadowGuardMiddleware as ASGIMiddleware
from shadowguard.middleware.wsgi import ShadowGuardMiddleware as WSGIMiddleware


def _blocks_grown(call: object, n: int, metric_reader: Any) -> int:
    assert callable(call)
    for _ in range(2_000):
        call()
    metric_reader.collect()
    gc.collect()
    before = sys.getallocatedblocks()
    for _ in range(n):
        call()
    metric_reader.collect()
    gc.collect()
    return sys.getallocatedblocks() - before


def test_memory_is_flat_over_100000_shadow_requests(metric_reader: Any) -> None:
    asgi = asgi_caller(ASGIMiddleware(asgi_app), [(b"host", b"orders-shadow")])
    # One object kept per request would be 100,000 blocks; allow a little allocator noise.
    assert _blocks_grown(asgi, 100_000, metric_reader) < 500


def test_wsgi_memory_is_flat_over_shadow_requests(metric_reader: Any) -> None:
    wsgi = wsgi_caller(WSGIMiddleware(wsgi_app), {"HTTP_HOST": "orders-shadow"})
    assert _blocks_grown(wsgi, 20_000, metric_reader) < 500
