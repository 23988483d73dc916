"""What a compare worker is told and what it reports: its sides, settings and figures."""

from __future__ import annotations

import resource
from dataclasses import dataclass, field
from typing import Any

from shadowguard.compare._errors import CompareError
from shadowguard.compare._join import Labels
from shadowguard.compare._options import Options

__all__ = ["Stats", "WorkerSettings", "peak_rss_kb", "stream_labels", "stream_settings"]

_ROLES = ("baseline", "candidate", "noise")


def stream_labels(options: Options) -> Labels:
    """The sides a worker joins: given up front (``--candidate`` default ``shadow``)."""
    noise = options.noise
    chosen = None if noise is None or noise.lower() in ("", "none") else noise
    labels = Labels(options.baseline or "primary", options.candidate or "shadow", chosen)
    names = [label for _, label in labels.roles()]
    if len(set(names)) != len(names):
        raise CompareError(f"the sides must differ: {', '.join(names)}")
    return labels


def stream_settings(options: Options, expire: float) -> dict[str, Any]:
    """What shapes a worker's results: every worker of a group must run with the same."""
    labels = stream_labels(options)
    return {
        "labels": {role: getattr(labels, role) for role in _ROLES},
        "window_seconds": options.window,
        "expire_seconds": expire,
        "ignore": list(options.ignore),
        "headers": list(options.header) or None,
        "examples": options.examples,
        "max_record_bytes": options.max_record_bytes,
    }


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs (besides the comparison's own options)."""

    group: str
    results: str
    expire: float
    idle_exit: float | None = None
    segment_records: int = 20_000
    segment_seconds: float = 5.0
    session_timeout_ms: int = 10_000


@dataclass
class Stats:
    """What a worker did, written with ``--stats`` when it stops."""

    records: int = 0
    pairs: int = 0
    seconds: float = 0.0
    partitions: list[int] = field(default_factory=list)
    rebalances: int = 0
    max_pending: int = 0
    max_rss_kb: int = 0
    checkpoints: int = 0
    skipped: int = 0
    #: Records read by label: a side named wrongly shows here as a label never joined.
    by_label: dict[str, int] = field(default_factory=dict)
    #: When each assignment came (epoch seconds): rebalance times.
    assigned_at: list[float] = field(default_factory=list)


def peak_rss_kb() -> int:
    """This process's peak resident size (``VmHWM``; ``ru_maxrss`` can carry a parent's)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
