"""What mirroring costs the primary before any shadow runs, for the soak run.

The suite does not collect this file (its name is not ``test_*``); ``nox -s soak`` names it.
It measures the primary behind one Envoy in three conditions, interleaved as in
``test_primary_under_load.py``: no mirror; an idle mirror, whose copies a second Envoy
answers at once with 503 (a shadow that costs nothing: what remains is the front Envoy's
own work for the copy); and the slow shadowguard shadow of the load proof. The first
comparison is the floor no shadow can go below on this machine, noted; the second, the
shadow's cost over that floor, is asserted within ``TOLERANCE``. A second test measures the
slow shadow behind Envoy circuit breakers set to its admission limit against no mirror.
"""

from __future__ import annotations

import uuid

from shadowguard.demo.envoy import CLUSTER, CONFIG
from tests.e2e._latency import TOLERANCE, compare_within
from tests.e2e._orders import (
    PRIMARY,
    Orders,
    Stack,
    copies_refused,
    copies_sent,
    lowest_cpu_priority,
    routes_config,
)
from tests.e2e.test_primary_under_load import (
    BLOCK,
    LIMIT,
    MAX_PAIRS,
    PAIRS,
    against_slow_mirror,
    slow_shadow,
)

#: An Envoy that answers every request with 503 at once.
_IDLE_VHOST = """\
                    - name: idle
                      domains: ["*"]
                      routes:
                        - match: {prefix: "/"}
                          direct_response: {status: 503}"""


def test_a_slow_shadow_costs_the_primary_no_more_than_an_idle_mirror(stack: Stack) -> None:
    primary = stack.service(PRIMARY)
    shadow = slow_shadow(stack)
    idle = stack.envoy(
        CONFIG.format(vhosts=_IDLE_VHOST, clusters=CLUSTER.format(name="unused", port=1))
    )
    lowest_cpu_priority(idle)
    mirrors = {"plain.local": None, "idle.local": idle.listener_port, "orders.local": shadow.port}
    proxy = stack.envoy(routes_config(primary.port, mirrors, "0.5s"))
    orders = Orders(
        proxy.listener_port,
        f"floor-{uuid.uuid4().hex[:6]}-",
        {"no mirror": "plain.local", "idle mirror": "idle.local", "slow mirror": "orders.local"},
    )

    def block(condition: str) -> list[float]:
        return orders.block(condition, BLOCK)

    try:
        floor = compare_within(
            block,
            "no mirror",
            "idle mirror",
            pairs=PAIRS,
            max_pairs=MAX_PAIRS,
            tolerance=TOLERANCE,
            warm_up=True,
        )
        over_floor = against_slow_mirror(orders, "idle mirror")
    finally:
        orders.close()
    stack.figures(f"the mirror's floor: {floor}")
    stack.figures(f"the slow shadow over that floor: {over_floor}")
    assert over_floor.within(TOLERANCE), str(over_floor)
    stack.assert_stored_once(orders)


def test_a_slow_shadow_behind_envoy_circuit_breakers_costs_the_primary_little(
    stack: Stack,
) -> None:
    """The slow shadow with its cluster's circuit breakers at its admission limit: Envoy
    refuses the copies the shadow would shed, so they cost the shadow's CPU nothing."""
    primary = stack.service(PRIMARY)
    shadow = slow_shadow(stack)
    mirrors = {"plain.local": None, "orders.local": shadow.port}
    proxy = stack.envoy(routes_config(primary.port, mirrors, "0.5s", {"orders.local": LIMIT}))
    orders = Orders(
        proxy.listener_port,
        f"breaker-{uuid.uuid4().hex[:6]}-",
        {"no mirror": "plain.local", "slow mirror": "orders.local"},
    )
    try:
        comparison = against_slow_mirror(orders, "no mirror")
    finally:
        orders.close()
    sent, refused = copies_sent(proxy, "shadow_1"), copies_refused(proxy, "shadow_1")
    stack.figures(f"behind circuit breakers ({LIMIT}): {comparison}")
    stack.figures(f"copies: {sent} sent to the shadow, {refused} refused by Envoy")
    assert refused > sent, (sent, refused)  # the breakers, not the shadow, turned most away
    assert comparison.within(TOLERANCE), str(comparison)
    stack.assert_stored_once(orders)
