"""The redis guard on the primary path: real GET and SET round trips to the Redis on loopback.

The guarded and the unguarded client talk to the same server, interleaved. The unguarded
one has the original seam bound on the instance, which shadows the installed patch on the
class: exactly the path without shadowguard. A suppressed shadow SET (no round trip) is
timed against the primary SET, to show what shadow traffic costs instead.
"""

from __future__ import annotations

import os
import types
from typing import Any

from benchmarks._harness import Harness
from shadowguard import shadow

HOST = os.environ.get("SHADOWGUARD_BENCH_REDIS_HOST", "127.0.0.1")
PORT = int(os.environ.get("SHADOWGUARD_BENCH_REDIS_PORT", "6379"))
DB = 12
KEY = "shadowguard:bench"


def _unguarded(client: Any, original: Any) -> Any:
    vars(client)["_send_command_parse_response"] = types.MethodType(original, client)
    return client


def run(h: Harness) -> None:
    if not h.imports("redis", missing="redis is not installed: pip install 'shadowguard[redis]'"):
        return
    import redis

    from shadowguard.integrations import redis as sink

    original = vars(redis.Redis)["_send_command_parse_response"]
    plain = _unguarded(redis.Redis(host=HOST, port=PORT, db=DB), original)
    try:
        plain.set(KEY, "v")
    except redis.ConnectionError as exc:
        h.note(f"no Redis at {HOST}:{PORT} ({exc}): the redis comparisons are skipped")
        return
    sink.install()
    guarded = redis.Redis(host=HOST, port=PORT, db=DB)
    try:
        with h.longer_samples():
            guarded.get(KEY)
            h.compare(
                "redis GET loopback, primary: guarded vs unguarded",
                lambda: plain.get(KEY),
                lambda: guarded.get(KEY),
                target_ratio=1.03,
            )
            h.compare(
                "redis SET loopback, primary: guarded vs unguarded",
                lambda: plain.set(KEY, "v"),
                lambda: guarded.set(KEY, "v"),
                target_ratio=1.03,
            )

            def suppressed_set() -> Any:
                with shadow("bench"):
                    return guarded.set(KEY, "shadow")

            h.compare(
                "redis: shadow suppressed SET vs real primary SET",
                lambda: plain.set(KEY, "v"),
                suppressed_set,
            )
    finally:
        sink.uninstall()
        plain.delete(KEY)
        plain.close()
        guarded.close()
