"""Admission control for shadow requests: a per-process limit and an age budget.

Only requests already detected as shadow come here; a primary request is never counted,
shed or delayed. A shadow request is *shed* (answered at once with 503 and the
:data:`SHED_HEADER`, its handler never runs) when it is older than
``shadow_budget_seconds`` (``reason="budget"``) or when ``max_concurrent_shadow`` shadow
requests already run in this process (``reason="limit"``). Every shed is counted in
``shadowguard.shadow_shed``; the log gets one line per burst, not one per request.

An admitted request holds a :class:`Slot` of the gate it was admitted into, and gives it
back to that gate: a gate swapped meanwhile (a test's fresh gate, a forked worker's) keeps
an exact count, and a release after a fork never waits on a lock a parent's thread held.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from shadowguard.contract import BURST_GAP_SECONDS, Bursts, Settings, telemetry

__all__ = [
    "BURST_GAP_SECONDS",
    "SHED_BODY",
    "SHED_HEADER",
    "Slot",
    "admit",
    "asgi_timing",
    "environ_timing",
    "request_start",
    "running",
    "shed",
    "shed_headers",
]

logger = logging.getLogger("shadowguard.middleware")

#: Response header of a shed shadow request; its value is the reason.
SHED_HEADER = "x-shadowguard-shed"
SHED_BODY = b"shadow request shed by shadowguard\n"

_REQUEST_START = b"x-request-start"
_EXPECTED_TIMEOUT = b"x-envoy-expected-rq-timeout-ms"


class _Gate:
    """The shadow requests running in this process, under a lock (WSGI threads)."""

    __slots__ = ("bursts", "forked", "lock", "running")

    def __init__(self) -> None:
        # Reentrant: a shadow response collected by the garbage collector releases its slot
        # from whatever code was running, possibly inside this lock on the same thread.
        self.lock = threading.RLock()
        self.running = 0
        #: True in a forked child for its copy of the parent's gate: nothing counts there.
        self.forked = False
        self.bursts = Bursts()


class Slot:
    """The place an admitted shadow request holds in its gate until :meth:`release`."""

    __slots__ = ("_gate",)

    def __init__(self, gate: _Gate) -> None:
        self._gate: _Gate | None = gate

    def release(self) -> None:
        """Give the place back to the gate it was taken from; later calls do nothing."""
        gate = self._gate
        if gate is None or gate.forked:
            # Forked: the parent's request ends in the parent; the copy of its lock may be
            # held by a thread that does not exist in this process.
            return
        with gate.lock:
            if self._gate is None:  # released meanwhile by another thread
                return
            self._gate = None
            gate.running -= 1


_gate = _Gate()


def _after_fork() -> None:
    # A pre-forking server's worker starts with none of its parent's requests, and must not
    # inherit a lock a parent's thread held at the fork. Only this thread runs here: no lock.
    global _gate
    _gate.forked = True
    _gate = _Gate()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def running() -> int:
    """Shadow requests admitted and not yet released in this process."""
    return _gate.running


def admit(settings: Settings, timing: tuple[str | None, str | None] | None) -> Slot | str:
    """Admit a shadow request: its :class:`Slot` when it may run (release it when the
    request ends), otherwise the reason it is shed (already counted and logged)."""
    if timing is not None and _over_budget(settings, *timing):
        shed("budget", settings)
        return "budget"
    gate = _gate
    limit = settings.max_concurrent_shadow
    with gate.lock:
        if limit is None or gate.running < limit:
            gate.running += 1
            return Slot(gate)
    shed("limit", settings)
    return "limit"


def shed_headers(reason: str) -> list[tuple[str, str]]:
    """The headers of a shed shadow request's 503."""
    return [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(SHED_BODY))),
        (SHED_HEADER, reason),
    ]


def asgi_timing(
    headers: Iterable[tuple[bytes, bytes]], settings: Settings
) -> tuple[str | None, str | None] | None:
    """``x-request-start`` and ``x-envoy-expected-rq-timeout-ms`` of ASGI headers."""
    if settings.shadow_budget_seconds is None:
        return None
    start = timeout = None
    try:
        for name, value in headers:
            name = name.lower()
            if name == _REQUEST_START:
                start = value.decode("latin-1")
            elif name == _EXPECTED_TIMEOUT:
                timeout = value.decode("latin-1")
    except (TypeError, AttributeError, ValueError):
        return None  # not what ASGI promises: age unknown, so not shed for age
    return start, timeout


def environ_timing(
    environ: Mapping[str, Any], settings: Settings
) -> tuple[str | None, str | None] | None:
    """The same headers from a WSGI environ or Django ``META``."""
    if settings.shadow_budget_seconds is None:
        return None
    return environ.get("HTTP_X_REQUEST_START"), environ.get("HTTP_X_ENVOY_EXPECTED_RQ_TIMEOUT_MS")


def request_start(raw: str) -> float | None:
    """Epoch seconds from ``x-request-start``: ``t=<number>`` or a bare number, in seconds,
    milliseconds, microseconds or nanoseconds (told apart by magnitude, as APM agents do);
    None when it is not such a number."""
    value = raw.strip()
    if value[:2] in ("t=", "T="):
        value = value[2:]
    try:
        number = float(value)
    except ValueError:
        return None
    if not 0 < number < 1e20:
        return None
    for scale in (1.0, 1e3, 1e6):
        if number < 1e11 * scale:  # 1e11 s is the year 5138: smaller means this unit
            return number / scale
    return number / 1e9


def _over_budget(settings: Settings, start: str | None, timeout_ms: str | None) -> bool:
    budget = settings.shadow_budget_seconds
    if budget is None or start is None:
        return False
    started = request_start(start)
    if started is None:
        return False
    if timeout_ms is not None and timeout_ms.strip().isdigit() and int(timeout_ms) > 0:
        # The mirror waits no longer than its route timeout: nobody waits past it.
        budget = min(budget, int(timeout_ms) / 1000)
    return time.time() - started > budget


def shed(reason: str, settings: Settings) -> None:
    """Count a shed (or cancelled) shadow request; log the first of each burst."""
    telemetry.record_shadow_shed(reason)
    previous = _gate.bursts.opens(reason)
    if previous is None:
        return
    if reason == "limit":
        why = (
            f"{settings.max_concurrent_shadow} already running in this process "
            "(max_concurrent_shadow)"
        )
    elif reason == "budget":
        why = f"older than shadow_budget_seconds={settings.shadow_budget_seconds:g}"
    else:
        why = "their mirror client disconnected"
    logger.warning(
        "shadowguard: %s shadow requests: %s; the rest of this burst is counted in "
        "shadowguard.shadow_shed{reason=%s}, not logged%s",
        "cancelling" if reason == "disconnected" else "shedding",
        why,
        reason,
        f" (the previous burst had {previous})" if previous else "",
    )
