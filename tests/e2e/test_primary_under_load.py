"""The load proof behind the real Envoy mirror: a shadow on the primary's own database.

The FastAPI order service runs twice (primary, shadow) on one PostgreSQL table whose
``sku`` is UNIQUE, so the primary's insert and the shadow copy's insert of the same order
contend on one index entry. A slow shadow (``ORDERS_DELAY``, longer than the mirror's
timeout) must not cost the primary more than 10% at P50 or P99 against no mirror at all
(asserted in a soak run, at P99 behind Envoy's circuit breakers: ``soak_mirror_floor.py``;
the suite's few pairs assert 25% at P50 and 50% at P99: ``_latency.py``), with the shadow
at the lowest CPU priority: on one 2-core machine shared by everything, the stand-in for
its own nodes (at the same priority it took CPU the primary needed; the docs give both).
Its memory stays bounded under the backlog; the primary's lock waits on shadow
transactions are counted and bounded; every order is stored once, none by the shadow.
``nox -s soak`` runs the same tests with 20 times the blocks and orders.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests._soak import examples
from tests.e2e._latency import TAIL_TOLERANCE, TOLERANCE, Comparison, compare_within
from tests.e2e._orders import (
    PRIMARY,
    SHADOW,
    Orders,
    RssPeak,
    Stack,
    copies_sent,
    lowest_cpu_priority,
    metrics,
    routes_config,
    rss_mib,
    settled,
    until,
)
from tests.e2e._pg_locks import LockSampler
from tests.peers.envoy import Envoy
from tests.peers.uvicorn import UvicornService

pytestmark = pytest.mark.postgres

#: Orders per latency block; pairs of blocks at least and at most (fixed in a soak run).
BLOCK, PAIRS, MAX_PAIRS = 100, examples(6), max(examples(6), 16)
#: The slow shadow: seconds per request, past the mirror's route timeout.
DELAY, MIRROR_TIMEOUT = 1.0, 0.5
#: The shadow's max_concurrent_shadow.
LIMIT = 8
#: The shadow's growth in resident memory under the backlog, at most.
RSS_BOUND_MIB = 40.0
#: The shadow's statement and idle-in-transaction bounds; a primary waits at most their sum
#: on a shadow transaction of one statement.
SHADOW_BOUNDS = {
    "SHADOWGUARD_DB_STATEMENT_TIMEOUT": "250ms",
    "SHADOWGUARD_DB_IDLE_TIMEOUT": "250ms",
}
WAIT_BOUND = 0.5
#: The P99 bound without circuit breakers, in a soak run (see the assertion).
UNPROTECTED_TAIL = 0.25


def _answers(proxy: Envoy, cluster: str) -> dict[str, int]:
    """What the shadow answered Envoy, per status code, and Envoy's own timeouts."""
    stats = proxy.stats(f"cluster.{cluster}.upstream_rq_")
    return {
        name.rsplit("_", 1)[1]: value
        for name, value in stats.items()
        if value and (name.rsplit("_", 1)[1].isdigit() or name.endswith("_timeout"))
    }


def slow_shadow(stack: Stack) -> UvicornService:
    """The slow shadow: ``DELAY`` per order, ``LIMIT`` at once, the database bounds, at the
    lowest CPU priority."""
    shadow = stack.service(
        SHADOW,
        ORDERS_DELAY=str(DELAY),
        SHADOWGUARD_MAX_CONCURRENT_SHADOW=str(LIMIT),
        **SHADOW_BOUNDS,
    )
    lowest_cpu_priority(shadow)
    return shadow


def against_slow_mirror(orders: Orders, baseline: str) -> Comparison:
    """The primary's latency with the slow mirror against ``baseline``, blocks interleaved."""
    return compare_within(
        lambda condition: orders.block(condition, BLOCK),
        baseline,
        "slow mirror",
        pairs=PAIRS,
        max_pairs=MAX_PAIRS,
        tolerance=TOLERANCE,
        settle=DELAY + 0.1,  # the copies admitted in a mirrored block have ended
        warm_up=True,
    )


def test_a_slow_shadow_costs_the_primary_little_and_its_memory_stays_bounded(stack: Stack) -> None:
    """The primary's P50/P99 with a slow mirrored shadow against no mirror, within
    ``TOLERANCE`` (25 % in the suite; issue 19's 10 % in ``nox -s soak``, which this 2-core
    machine does not meet yet); the shadow's memory bounded; sheds and cancellations counted."""
    primary = stack.service(PRIMARY)
    shadow = slow_shadow(stack)
    config = routes_config(
        primary.port, {"plain.local": None, "orders.local": shadow.port}, f"{MIRROR_TIMEOUT}s"
    )
    proxy = stack.envoy(config)
    orders = Orders(
        proxy.listener_port,
        f"load-{uuid.uuid4().hex[:6]}-",
        {"no mirror": "plain.local", "slow mirror": "orders.local"},
    )
    base_rss = rss_mib(shadow.process.pid)
    locks = LockSampler(stack.database, interval=0.02)
    rss = RssPeak(shadow.process.pid)
    started = time.monotonic()
    try:
        comparison = against_slow_mirror(orders, "no mirror")
        loaded = time.monotonic() - started
        # The shadow answers at once after the load: no backlog of copies nobody waits for.
        begin = time.perf_counter()
        after_load = metrics(shadow, timeout=5)
        answered_in = time.perf_counter() - begin
    finally:
        orders.close()
        peak_rss = rss.stop()
        locks.stop()
    # Every copy the mirror sent was shed or admitted, LIMIT at a time. The example's
    # endpoint runs in a thread, which the cancellation at the mirror's timeout cannot stop:
    # its slot is free from then on, so a slot turns over every MIRROR_TIMEOUT seconds.
    mirrored = orders.sent["slow mirror"]
    until(
        lambda: settled(shadow, proxy, "shadow_1"),
        timeout=DELAY * 5 + 10,
        what="the shadow's counts settle",
    )
    final = metrics(shadow)
    admitted = final["requests"]["shadow"]
    after_rss = rss_mib(shadow.process.pid)
    stack.figures(str(comparison))
    stack.figures(
        f"shadow RSS {base_rss:.1f} MiB before, {peak_rss:.1f} at peak, {after_rss:.1f} after; "
        f"{mirrored} copies in {loaded:.1f} s, {admitted} admitted, shed {final['shed']}; "
        f"/metrics answered {answered_in:.3f} s after the load"
    )
    # Without circuit breakers every copy reaches the shadow, whose CPU shedding them shows
    # in the primary's tail on this 2-core machine (soak: P99 x1.166): the 10% at P99 is
    # asserted behind the breakers the docs recommend (soak_mirror_floor.py).
    assert comparison.within(TOLERANCE, max(TAIL_TOLERANCE, UNPROTECTED_TAIL)), str(comparison)
    assert answered_in < 2.0, answered_in
    assert copies_sent(proxy, "shadow_1") == mirrored
    assert admitted <= LIMIT * (loaded / MIRROR_TIMEOUT + 1), (admitted, loaded)
    # Shed at the limit, and the admitted copies the mirror gave up on were cancelled.
    assert final["shed"]["limit"] + final["shed"].get("budget", 0) == mirrored - admitted, final
    assert final["shed"]["disconnected"] == admitted, final  # each outlived the mirror
    assert after_load["shed"]["limit"] >= 1, after_load
    assert peak_rss - base_rss < RSS_BOUND_MIB, (base_rss, peak_rss)
    assert after_rss - base_rss < RSS_BOUND_MIB, (base_rss, after_rss)

    # The slow shadow reaches the database after the primary committed: no primary waits on it.
    waits = locks.waits_of(PRIMARY, SHADOW)
    assert all(wait < WAIT_BOUND for wait in waits), waits
    # Every order once, with the id the primary answered; nothing of the shadow's.
    stack.assert_stored_once(orders)
    assert metrics(primary)["suppressed"] == {}
    assert metrics(primary)["shed"] == {}  # the primary is never shed


def test_primary_lock_waits_on_shadow_transactions_are_counted_and_short(stack: Stack) -> None:
    """A fast shadow inserts the same sku at the same time as the primary: whichever comes
    second waits for the other's transaction on the UNIQUE index."""
    primary = stack.service(PRIMARY)
    shadow = stack.service(SHADOW, **SHADOW_BOUNDS)
    # A mirror timeout no copy reaches: this test is about locks, not cancellation.
    proxy = stack.envoy(routes_config(primary.port, {"orders.local": shadow.port}, "5s"))
    orders = Orders(
        proxy.listener_port, f"locks-{uuid.uuid4().hex[:6]}-", {"mirror": "orders.local"}
    )
    locks = LockSampler(stack.database, interval=0.005)
    try:
        orders.bursts("mirror", bursts=examples(100), size=4)
    finally:
        orders.close()
        locks.stop()
    total = orders.sent["mirror"]
    until(lambda: copies_sent(proxy, "shadow_0") == total, timeout=30, what="every copy sent")
    waits = locks.waits_of(PRIMARY, SHADOW)
    stack.figures(
        f"{total} orders, {locks.samples} lock samples: the primary waited on shadow "
        f"transactions {len(waits)} times, longest {max(waits, default=0) * 1000:.1f} ms; the "
        f"shadow on the primary {len(locks.waits_of(SHADOW, PRIMARY))} times; the shadow's "
        f"answers {_answers(proxy, 'shadow_0')}, its sheds {metrics(shadow)['shed']}"
    )
    assert all(wait < WAIT_BOUND for wait in waits), waits
    assert len(waits) <= total * 0.15, waits  # rare: the shadow seldom gets there first
    stack.assert_stored_once(orders)
    assert metrics(primary)["suppressed"] == {}
