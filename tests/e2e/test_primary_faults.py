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


def _faulty(service: Callable[..., UvicornService], fault: str, **env: str) -> UvicornService:
    """The faulty shadow, at the lowest CPU priority (see test_primary_under_load.py)."""
    shadow = service(
        SHADOW,
        app="tests.e2e.fault_app:app",
        cwd=ROOT,
        FAULT=fault,
        SHADOWGUARD_MAX_CONCURRENT_SHADOW=str(LIMIT),
        **env,
    )
    lowest_cpu_priority(shadow)
    return shadow


def _compare(
    orders: Orders,
    run: Callable[[str], list[float]],
    settle: float,
    figures: Callable[[str], None],
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
    figures(str(comparison))
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


def test_a_shadow_handler_that_hangs_forever(
    postgres_database: str,
    orders_table: str,
    service: Callable[..., UvicornService],
    envoy: Callable[[str], Envoy],
    figures: Callable[[str], None],
) -> None:
    """Each admitted copy hangs until the mirror's 0.5 s timeout, then is cancelled."""
    primary = service(PRIMARY)
    shadow = _faulty(service, "hang")
    proxy = envoy(routes_config(primary.port, {"plain.local": None, "orders.local": shadow.port}))
    orders = Orders(proxy.listener_port, f"hang-{uuid.uuid4().hex[:6]}-", HOSTS)
    try:
        _compare(orders, lambda condition: orders.block(condition, BLOCK), 0.6, figures)
    finally:
        orders.close()
    _copies_ended(shadow, proxy, timeout=10, what="every hung copy cancelled")
    counts = metrics(shadow)
    figures(f"{orders.sent['faulty mirror']} copies; the shadow's counts {counts}")
    assert copies_sent(proxy, "shadow_1") == orders.sent["faulty mirror"]
    admitted = counts["requests"]["shadow"]
    assert admitted >= 1
    assert counts["shed"]["disconnected"] == admitted  # none ran on after its mirror left
    assert counts["shed"]["limit"] >= 1
    orders.assert_stored_once(postgres_database, orders_table)


def test_a_shadow_that_sleeps_inside_its_transaction(
    postgres_database: str,
    orders_table: str,
    service: Callable[..., UvicornService],
    envoy: Callable[[str], Envoy],
    figures: Callable[[str], None],
) -> None:
    """Each admitted copy inserts its order (the primary's sku) and sleeps 1 s in the
    transaction. Where the copy's insert came first, the primary waits for it, until
    PostgreSQL ends the shadow's session after its 250 ms idle-in-transaction bound; where
    the primary's came first, the copy fails at once on the UNIQUE key."""
    primary = service(PRIMARY)
    shadow = _faulty(
        service,
        "txn-sleep",
        FAULT_SECONDS="1",
        SHADOWGUARD_DB_STATEMENT_TIMEOUT="250ms",
        SHADOWGUARD_DB_IDLE_TIMEOUT="250ms",
    )
    proxy = envoy(routes_config(primary.port, {"plain.local": None, "orders.local": shadow.port}))
    orders = Orders(proxy.listener_port, f"txn-{uuid.uuid4().hex[:6]}-", HOSTS)
    locks = LockSampler(postgres_database, interval=0.005)
    try:
        comparison = _compare(
            orders, lambda condition: orders.block(condition, BLOCK), 1.1, figures, None
        )
    finally:
        orders.close()
        locks.stop()
    waits = locks.waits_of(PRIMARY, SHADOW)
    figures(
        f"primary waits on the shadow (s): {[round(w, 3) for w in waits]}; most sessions idle "
        f"in a transaction at once: {locks.idle_in_transaction}"
    )
    # The shadow's transactions are cut off: a primary waits at most the idle bound on one,
    # not the shadow's whole second of sleep.
    assert all(wait < 0.5 for wait in waits), waits
    assert comparison.p99("faulty mirror") < 0.5, str(comparison)
    # Never more shadow transactions open than requests admitted.
    assert locks.idle_in_transaction.get(SHADOW, 0) <= LIMIT, locks.idle_in_transaction
    orders.assert_stored_once(postgres_database, orders_table)


def test_a_burst_of_ten_times_the_admission_limit(
    postgres_database: str,
    orders_table: str,
    service: Callable[..., UvicornService],
    envoy: Callable[[str], Envoy],
    figures: Callable[[str], None],
) -> None:
    """40 orders at once, limit 4: exactly 4 copies run (hanging until the mirror's 1 s
    timeout), 36 are shed; then bursts with and without the mirror compared."""
    primary = service(PRIMARY)
    shadow = _faulty(service, "hang")
    config = routes_config(
        primary.port, {"plain.local": None, "orders.local": shadow.port}, timeout="1s"
    )
    proxy = envoy(config)
    orders = Orders(proxy.listener_port, f"burst-{uuid.uuid4().hex[:6]}-", HOSTS)
    burst = 10 * LIMIT
    try:
        orders.bursts("faulty mirror", bursts=1, size=burst)
        _copies_ended(shadow, proxy, timeout=15, what="the burst's copies answered")
        counts: dict[str, Any] = metrics(shadow)
        assert counts["shed"] == {"limit": burst - LIMIT, "disconnected": LIMIT}, counts
        _compare(orders, lambda c: orders.bursts(c, bursts=3, size=burst), 1.1, figures)
    finally:
        orders.close()
    orders.assert_stored_once(postgres_database, orders_table)
