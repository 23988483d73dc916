"""Timing harness: a guarded call against the unguarded one, interleaved in the same run.

Each comparison alternates samples of the baseline and the guarded callable, in ABBA
order, so that drift in the machine's speed (or in the workload) hits both alike, then reports the median of the per-sample
ratios and the added time per call. A comparison of CPU-bound calls may ask for the
``fastest`` samples instead: many short samples, each side's fastest compared, since on a
machine shared with other work the slower samples measure that work, not the code
(``timeit``'s advice); its median difference is kept too, to show the noise.

A run has two passes, each in its own process (the OpenTelemetry globals are set once per
process): ``api``, the OpenTelemetry API alone, where instruments are no-ops, and
``sdk``, with the SDK configured as services run it: a MeterProvider whose metric reader
collects between samples (as a periodic reader would, outside the timed calls) and a
TracerProvider.

A comparison over its target in its first process is measured again in fresh processes
(see :mod:`benchmarks.__main__`): where a process's code and heap land in memory moves a
call by a few percent, the way ``pyperf`` sees it, so one process is one sample.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import statistics
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

QUICK = os.environ.get("SHADOWGUARD_BENCH_QUICK", "").strip().lower() in {"1", "true", "yes", "on"}
PASSES = ("api", "sdk")


@dataclass
class Comparison:
    name: str
    telemetry: str
    baseline_ns: float
    guarded_ns: float
    ratio: float
    added_ns: float
    median_added_ns: float
    fastest: bool = False
    target_ratio: float | None = None
    target_added_ns: float | None = None
    module: str = ""

    @property
    def met(self) -> bool | None:
        checks = []
        if self.target_ratio is not None:
            checks.append(self.ratio <= self.target_ratio)
        if self.target_added_ns is not None:
            checks.append(self.added_ns <= self.target_added_ns)
        return all(checks) if checks else None


def configure_sdk() -> Callable[[], object]:
    """Set the global OpenTelemetry SDK providers; returns what collects the metrics."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    trace.set_tracer_provider(TracerProvider())
    return reader.get_metrics_data


@dataclass
class Harness:
    telemetry: str = "api"
    results: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sample_seconds: float = 0.005 if QUICK else 0.03
    samples: int = 7 if QUICK else 31
    #: For ``fastest`` comparisons: each sample's length and each side's time in all, many
    #: short samples so that some of them run undisturbed.
    fast_sample_seconds: float = 0.001 if QUICK else 0.002
    fast_seconds_per_side: float = 0.4 if QUICK else 1.5
    #: Run before every sample, untimed (the SDK pass collects metrics there).
    between_samples: Callable[[], object] | None = None
    #: The benchmark module running (recorded with each comparison).
    module: str = ""
    #: When set, only the comparisons of these names run (a re-measurement).
    only: frozenset[str] | None = None

    @property
    def sdk(self) -> bool:
        """Is the OpenTelemetry SDK configured in this pass?"""
        return self.telemetry == "sdk"

    @contextmanager
    def longer_samples(self) -> Iterator[None]:
        """Longer samples while it lasts: network round trips are noisier than the core's
        microbenchmarks."""
        saved = self.sample_seconds, self.samples
        self.sample_seconds, self.samples = max(self.sample_seconds, 0.05), max(self.samples, 15)
        try:
            yield
        finally:
            self.sample_seconds, self.samples = saved

    def _number(self, fn: Callable[[], object], sample_seconds: float) -> int:
        number = 1
        while True:
            elapsed = timeit.timeit(fn, number=number)
            if elapsed >= sample_seconds / 5 or number >= 10_000_000:
                return max(1, int(number * sample_seconds / max(elapsed, 1e-9)))
            number *= 10

    def compare(
        self,
        name: str,
        baseline: Callable[[], object],
        guarded: Callable[[], object],
        *,
        target_ratio: float | None = None,
        target_added_ns: float | None = None,
        sdk_target_added_ns: float | None = None,
        before_baseline: Callable[[], object] | None = None,
        before_guarded: Callable[[], object] | None = None,
        fastest: bool = False,
    ) -> Comparison | None:
        """Time ``guarded`` against ``baseline`` (per call), interleaved.

        ``before_baseline`` / ``before_guarded`` run untimed before each sample of that
        side (for example ``uninstall()`` / ``install()``). ``sdk_target_added_ns``
        replaces ``target_added_ns`` in the SDK pass. ``fastest``: compare the fastest
        samples (CPU-bound calls) rather than the medians. Returns None when ``only``
        leaves this comparison out.
        """
        if self.only is not None and name not in self.only:
            return None
        if self.sdk and sdk_target_added_ns is not None:
            target_added_ns = sdk_target_added_ns
        sample_seconds = self.fast_sample_seconds if fastest else self.sample_seconds
        if before_baseline is not None:
            before_baseline()
        number = self._number(baseline, sample_seconds)
        samples = self.samples
        if fastest:
            samples = max(samples, int(self.fast_seconds_per_side / sample_seconds))
            for _ in range(3):  # warm both sides up: caches, the interpreter's specialization
                self._sample(baseline, number, before_baseline)
                self._sample(guarded, number, before_guarded)
        base_samples: list[float] = []
        guarded_samples: list[float] = []
        for i in range(samples):
            # ABBA order: a workload that slows as it runs (a table that grows) would
            # otherwise always hit the side sampled second.
            if i % 2 == 0:
                base_samples.append(self._sample(baseline, number, before_baseline))
                guarded_samples.append(self._sample(guarded, number, before_guarded))
            else:
                guarded_samples.append(self._sample(guarded, number, before_guarded))
                base_samples.append(self._sample(baseline, number, before_baseline))
        median_added = statistics.median(
            g - b for g, b in zip(guarded_samples, base_samples, strict=True)
        )
        if fastest:
            base, guard = min(base_samples), min(guarded_samples)
            ratio, added = guard / base, guard - base
        else:
            base, guard = statistics.median(base_samples), statistics.median(guarded_samples)
            ratio = statistics.median(
                g / b for g, b in zip(guarded_samples, base_samples, strict=True)
            )
            added = guard - base
        result = Comparison(
            name,
            self.telemetry,
            baseline_ns=base,
            guarded_ns=guard,
            ratio=ratio,
            added_ns=added,
            median_added_ns=median_added,
            fastest=fastest,
            target_ratio=target_ratio,
            target_added_ns=target_added_ns,
            module=self.module,
        )
        self.results.append(result)
        print(row(result), flush=True)
        return result

    def _sample(
        self, fn: Callable[[], object], number: int, before: Callable[[], object] | None
    ) -> float:
        if self.between_samples is not None:
            self.between_samples()
        if before is not None:
            before()
        return timeit.timeit(fn, number=number) / number * 1e9

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def imports(self, *modules: str, missing: str) -> bool:
        """Whether ``modules`` import; if one does not, note ``missing`` (the way to get it)."""
        try:
            for name in modules:
                importlib.import_module(name)
        except ImportError:
            self.note(missing)
            return False
        return True

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "quick": QUICK,
            "telemetry": self.telemetry,
            "machine": machine(),
            "results": [asdict(r) | {"met": r.met} for r in self.results],
            "notes": self.notes,
        }
        path.write_text(json.dumps(payload, indent=2))


def machine() -> dict[str, Any]:
    """What the figures were measured on: cores, CPU model, Python."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }


def fmt_ns(ns: float) -> str:
    return f"{ns / 1000:.2f} us" if abs(ns) >= 1000 else f"{ns:.0f} ns"


def row(r: Comparison) -> str:
    target = []
    if r.target_ratio is not None:
        target.append(f"ratio<={r.target_ratio}")
    if r.target_added_ns is not None:
        target.append(f"added<={fmt_ns(r.target_added_ns)}")
    verdict = "" if r.met is None else (" OK" if r.met else " MISSED")
    noise = f" (median {fmt_ns(r.median_added_ns)})" if r.fastest else ""
    return (
        f"{r.name:<58} base {fmt_ns(r.baseline_ns):>10}  guarded {fmt_ns(r.guarded_ns):>10}  "
        f"ratio {r.ratio:6.3f}  added {fmt_ns(r.added_ns):>9}{noise}"
        + (f"  [{', '.join(target)}]{verdict}" if target else "")
    )
