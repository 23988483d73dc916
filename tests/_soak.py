"""How long property-based tests run: bounded in CI, longer under ``nox -s soak``."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

#: ``SHADOWGUARD_SOAK=N`` multiplies the examples of the stateful tests (``nox -s soak``).
FACTOR = max(1, int(os.environ.get("SHADOWGUARD_SOAK", "1") or "1"))


def examples(n: int) -> int:
    """``n`` examples in CI, ``n`` times the soak factor in a soak run."""
    return n * FACTOR


def stateful_settings(n: int, steps: int) -> settings:
    """Settings for a stateful test of ``n`` examples of ``steps`` steps (real peers)."""
    return settings(
        max_examples=examples(n),
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
