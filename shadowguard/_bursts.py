"""Bursts: log the first of a run of like events, count the rest, say the last run's size.

Shedding shadow requests and dropping capture records both come in runs that would flood
a log. A burst of one reason lasts while its events come less than ``gap`` seconds apart.
"""

from __future__ import annotations

import threading
import time

__all__ = ["BURST_GAP_SECONDS", "Bursts"]

BURST_GAP_SECONDS = 10.0


class Bursts:
    """Events by reason, grouped into bursts; made anew after a fork by its owner."""

    __slots__ = ("_gap", "_lock", "_seen")

    def __init__(self, gap: float = BURST_GAP_SECONDS) -> None:
        self._gap = gap
        self._lock = threading.Lock()
        #: reason -> [monotonic time of the last event, events in its burst]
        self._seen: dict[str, list[float]] = {}

    def opens(self, reason: str, count: int = 1) -> int | None:
        """Note ``count`` events of ``reason``: None within a burst; when they open one, the
        size of the previous burst of that reason (0 for the first)."""
        now = time.monotonic()
        with self._lock:
            burst = self._seen.get(reason)
            if burst is not None and now - burst[0] < self._gap:
                burst[0] = now
                burst[1] += count
                return None
            self._seen[reason] = [now, count]
        return 0 if burst is None else int(burst[1])
