"""Faults of a shadow behind the real Envoy mirror; the primary's answers and latency hold.

The primary is the example order service; the shadow is ``tests/e2e/fault_app.py``, a new
version with a bug: a handler that hangs forever, one that sleeps inside its database
transaction on the primary's table, and a burst of ten times its admission limit. The
primary's latency with the faulty mirror is compared with no mirror, blocks interleaved
(``tests/e2e/_latency.py``), and every order must be stored once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests._soak import examples
from tests.e2e._latency import TOLERANCE, Comparison, compare_within
from tests.e2e._orders import (
    PRIMARY,
    SHADOW,
    Orders,
    Stack,
    copies_refused,
    copies_sent,
    lowest_cpu_priority,
    metrics,
    routes_config,
    settled,
    until,
)
from tests.e2e._pg_locks import LockSampler
from tests.peers.envoy import Envoy
from tests.peers.uvicorn import UvicornService

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 4
#: Orders per latency block; pairs of blocks at least and at most (fixed in a soak run).
BLOCK, PAIRS, MAX_PAIRS = 100, examples(4), max(examples(4), 10)
HOSTS = {"no mirror": "plain.local", "faulty mirror": "orders.local"}


def _behind_the_mirror(
    stack: Stack,
    fault: str,
    prefix: str,
    timeout: str = "0.5s",
    breaker: int | None = None,
    **env: str,
) -> tuple[UvicornService, Envoy, Orders]:
    """The primary, the faulty shadow at the lowest CPU priority (see
    test_primary_under_load.py), Envoy mirroring ``orders.local`` to it, and the orders."""
    primary = stack.service(PRIMARY)
    shadow = stack.service(
        SHADOW,
        app="tests.e2e.fault_app:app",
        cwd=ROOT,
        FAULT=fault,
        SHADOWGUARD_MAX_CONCURRENT_SHADOW=str(LIMIT),
        **env,
    )
    lowest_cpu_priority(shadow)
    routes = {"plain.local": None, "orders.local": shadow.port}
    breakers = None if breaker is None else {"orders.local": breaker}
    proxy = stack.envoy(routes_config(primary.port, routes, timeout, breakers))
    return shadow, proxy, Orders(proxy.listener_port, f"{prefix}-{uuid.uuid4().hex[:6]}-", HOSTS)


def _compare(
    stack: Stack,
    run: Callable[[str], list[float]],
    settle: float,
    tolerance: float | None = TOLERANCE,
) -> Comparison:
    """Primary latency with the faulty mirror and without (``_latency.py``); within
    ``tolerance`` unless None (then a fixed number of pairs, for the figures)."""
    comparison = compare_within(
        run,
        "no mirror",
        "faulty mirror",
        pairs=PAIRS,
        max_pairs=PAIRS if tolerance is None else MAX_PAIRS,
        tolerance=TOLERANCE if tolerance is None else tolerance,
        settle=settle,
        warm_up=True,
    )
    stack.figures(str(comparison))
    if tolerance is not None:
        assert comparison.within(tolerance), str(comparison)
    return comparison


def _copies_ended(shadow: UvicornService, proxy: Envoy, timeout: float, what: str) -> None:
    """Wait until the shadow's counts settle with no copy running."""
    until(
        lambda: settled(shadow, proxy, "shadow_1") and metrics(shadow)["running"] == 0,
        timeout=timeout,
        what=what,
    )


def test_a_shadow_handler_that_hangs_forever(stack: Stack) -> None:
    """Each admitted copy hangs until the mirror's 0.5 s timeout, then is cancelled."""
    shadow, proxy, orders = _behind_the_mirror(stack, "hang", "hang")
    try:
        _compare(stack, lambda condition: orders.block(condition, BLOCK), 0.6)
    finally:
        orders.close()
    _copies_ended(shadow, proxy, timeout=10, what="every hung copy cancelled")
    counts = metrics(shadow)
    stack.figures(f"{orders.sent['faulty mirror']} copies; the shadow's counts {counts}")
    assert copies_sent(proxy, "shadow_1") == orders.sent["faulty mirror"]
    admitted = counts["requests"]["shadow"]
    assert admitted >= 1
    assert counts["shed"]["disconnected"] == admitted  # none ran on after its mirror left
    assert counts["shed"]["limit"] >= 1
    stack.assert_stored_once(orders)


def test_a_shadow_that_sleeps_inside_its_transaction(stack: Stack) -> None:
    """Each admitted copy inserts its order (the primary's sku) and sleeps 1 s in the
    transaction. Where the copy's insert came first, the primary waits for it, until
    PostgreSQL ends the shadow's session after its 250 ms idle-in-transaction bound; where
    the primary's came first, the copy fails at once on the UNIQUE key."""
    _, _, orders = _behind_the_mirror(
        stack,
        "txn-sleep",
        "txn",
        FAULT_SECONDS="1",
        SHADOWGUARD_DB_STATEMENT_TIMEOUT="250ms",
        SHADOWGUARD_DB_IDLE_TIMEOUT="250ms",
    )
    locks = LockSampler(stack.database, interval=0.005)
    try:
        comparison = _compare(stack, lambda condition: orders.block(condition, BLOCK), 1.1, None)
    finally:
        orders.close()
        locks.stop()
    waits = locks.waits_of(PRIMARY, SHADOW)
    stack.figures(
        f"primary waits on the shadow (s): {[round(w, 3) for w in waits]}; most sessions idle "
        f"in a transaction at once: {locks.idle_in_transaction}"
    )
    # The shadow's transactions are cut off: a primary waits at most the idle bound on one,
    # not the shadow's whole second of sleep.
    assert all(wait < 0.5 for wait in waits), waits
    assert comparison.p99("faulty mirror") < 0.5, str(comparison)
    # Never more shadow transactions open than requests admitted.
    assert locks.idle_in_transaction.get(SHADOW, 0) <= LIMIT, locks.idle_in_transaction
    stack.assert_stored_once(orders)


def test_a_burst_of_ten_times_the_admission_limit(stack: Stack) -> None:
    """40 orders at once, limit 4: exactly 4 copies run (hanging until the mirror's 1 s
    timeout), 36 are shed; then bursts with and without the mirror compared."""
    shadow, proxy, orders = _behind_the_mirror(stack, "hang", "burst", timeout="1s")
    burst = 10 * LIMIT
    try:
        orders.bursts("faulty mirror", bursts=1, size=burst)
        _copies_ended(shadow, proxy, timeout=15, what="the burst's copies answered")
        counts: dict[str, Any] = metrics(shadow)
        assert counts["shed"] == {"limit": burst - LIMIT, "disconnected": LIMIT}, counts
        _compare(stack, lambda c: orders.bursts(c, bursts=3, size=burst), 1.1)
    finally:
        orders.close()
    stack.assert_stored_once(orders)


def test_envoy_circuit_breakers_refuse_a_burst_before_the_shadow_sees_it(stack: Stack) -> None:
    """The same burst with the shadow cluster's circuit breakers at the admission limit
    (docs: Envoy mirror settings): Envoy itself refuses what the shadow would shed, so the
    refused copies cost the shadow nothing; the primary's orders are all stored once."""
    shadow, proxy, orders = _behind_the_mirror(stack, "hang", "breaker", "1s", breaker=LIMIT)
    burst = 10 * LIMIT
    try:
        orders.bursts("faulty mirror", bursts=1, size=burst)
        _copies_ended(shadow, proxy, timeout=15, what="the burst's copies answered")
        sent, refused = copies_sent(proxy, "shadow_1"), copies_refused(proxy, "shadow_1")
        counts: dict[str, Any] = metrics(shadow)
        stack.figures(f"burst of {burst}: Envoy sent {sent}, refused {refused}; shadow {counts}")
        assert sent + refused == burst
        # At most LIMIT connections and one pending copy: the rest never left Envoy.
        assert sent <= LIMIT + 1, (sent, refused)
        assert counts["requests"].get("shadow", 0) + counts["shed"].get("limit", 0) == sent
        assert counts["shed"].get("limit", 0) <= 1, counts
    finally:
        orders.close()
    stack.assert_stored_once(orders)
