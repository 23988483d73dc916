"""Timing harness: a guarded call against the unguarded one, interleaved in the same run.

Each comparison alternates samples of the baseline and the guarded callable so that
drift in the machine's speed hits both alike, then reports the median of the
per-sample ratios and the added time per call.
"""

from __future__ import annotations

import json
import os
import statistics
import timeit
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

QUICK = os.environ.get("SHADOWGUARD_BENCH_QUICK", "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Comparison:
    name: str
    baseline_ns: float
    guarded_ns: float
    ratio: float
    added_ns: float
    target_ratio: float | None = None
    target_added_ns: float | None = None

    @property
    def met(self) -> bool | None:
        checks = []
        if self.target_ratio is not None:
            checks.append(self.ratio <= self.target_ratio)
        if self.target_added_ns is not None:
            checks.append(self.added_ns <= self.target_added_ns)
        return all(checks) if checks else None


@dataclass
class Harness:
    results: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sample_seconds: float = 0.005 if QUICK else 0.03
    samples: int = 7 if QUICK else 31

    def _number(self, fn: Callable[[], object]) -> int:
        number = 1
        while True:
            elapsed = timeit.timeit(fn, number=number)
            if elapsed >= self.sample_seconds / 5 or number >= 10_000_000:
                return max(1, int(number * self.sample_seconds / max(elapsed, 1e-9)))
            number *= 10

    def compare(
        self,
        name: str,
        baseline: Callable[[], object],
        guarded: Callable[[], object],
        *,
        target_ratio: float | None = None,
        target_added_ns: float | None = None,
        before_baseline: Callable[[], object] | None = None,
        before_guarded: Callable[[], object] | None = None,
    ) -> Comparison:
        """Time ``guarded`` against ``baseline`` (per call), interleaved.

        ``before_baseline`` / ``before_guarded`` run untimed before each sample of that
        side (for example ``uninstall()`` / ``install()``).
        """
        if before_baseline is not None:
            before_baseline()
        number = self._number(baseline)
        base_samples: list[float] = []
        guarded_samples: list[float] = []
        for _ in range(self.samples):
            if before_baseline is not None:
                before_baseline()
            base_samples.append(timeit.timeit(baseline, number=number) / number * 1e9)
            if before_guarded is not None:
                before_guarded()
            guarded_samples.append(timeit.timeit(guarded, number=number) / number * 1e9)
        ratios = [g / b for g, b in zip(guarded_samples, base_samples, strict=False)]
        base = statistics.median(base_samples)
        guard = statistics.median(guarded_samples)
        result = Comparison(
            name,
            baseline_ns=base,
            guarded_ns=guard,
            ratio=statistics.median(ratios),
            added_ns=guard - base,
            target_ratio=target_ratio,
            target_added_ns=target_added_ns,
        )
        self.results.append(result)
        print(_row(result), flush=True)
        return result

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "quick": QUICK,
            "results": [asdict(r) | {"met": r.met} for r in self.results],
            "notes": self.notes,
        }
        path.write_text(json.dumps(payload, indent=2))


def _fmt_ns(ns: float) -> str:
    return f"{ns / 1000:.2f} us" if abs(ns) >= 1000 else f"{ns:.0f} ns"


def _row(r: Comparison) -> str:
    target = []
    if r.target_ratio is not None:
        target.append(f"ratio<={r.target_ratio}")
    if r.target_added_ns is not None:
        target.append(f"added<={_fmt_ns(r.target_added_ns)}")
    verdict = "" if r.met is None else (" OK" if r.met else " MISSED")
    return (
        f"{r.name:<58} base {_fmt_ns(r.baseline_ns):>10}  guarded {_fmt_ns(r.guarded_ns):>10}  "
        f"ratio {r.ratio:6.3f}  added {_fmt_ns(r.added_ns):>9}"
        + (f"  [{', '.join(target)}]{verdict}" if target else "")
    )
