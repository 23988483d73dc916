"""Stream consumers in shadow: the shadow's own consumer group reads, the primary's is untouched."""

from __future__ import annotations

from typing import Any

import pytest

import shadowguard
from shadowguard import ConfigError, ShadowSideEffectBlocked
from shadowguard.integrations import redis as sink
from tests.peers.redis import RedisPeer

SINK = "redis"
SINK_OPTIONS = {"shadow_groups": ["orders-shadow"]}


def _groups(oracle: Any, stream: str) -> dict[str, Any]:
    return {
        (g["name"].decode() if isinstance(g["name"], bytes) else g["name"]): g
        for g in oracle.xinfo_groups(stream)
    }


@pytest.mark.usefixtures("installed")
def test_a_shadow_worker_reads_every_entry_through_its_own_group(
    redis_client: Any, redis_peer: RedisPeer
) -> None:
    oracle, stream = redis_peer.oracle, redis_peer.key("orders")
    oracle.xgroup_create(stream, "workers", id="0", mkstream=True)
    oracle.xadd(stream, {"order": "1"})
    oracle.xadd(stream, {"order": "2"})
    with shadowguard.shadow() as scope:
        assert redis_client.xgroup_create(stream, "orders-shadow", id="0") is True
        ((_, entries),) = redis_client.xreadgroup("orders-shadow", "w1", {stream: ">"}, count=10)
        ids = [entry_id for entry_id, _ in entries]
        assert len(ids) == 2
        assert redis_client.xack(stream, "orders-shadow", *ids) == 2
        with pytest.raises(ShadowSideEffectBlocked, match="shadow_groups"):
            redis_client.xreadgroup("workers", "w1", {stream: ">"}, count=10)
        assert redis_client.xack(stream, "workers", ids[0]) == 1  # answered, not sent
    groups = _groups(oracle, stream)
    assert groups["orders-shadow"]["pending"] == 0
    assert groups["workers"]["pending"] == 0
    ((_, primary),) = oracle.xreadgroup("workers", "p1", {stream: ">"}, count=10)
    assert [entry_id for entry_id, _ in primary] == ids  # the primary still gets both
    assert [(s.detail["operation"], s.blocked) for s in scope.suppressed] == [
        ("XREADGROUP", True),
        ("XACK", False),
    ]


def test_shadow_groups_must_be_a_list_of_names() -> None:
    for bad in ("orders-shadow", [""], [1]):
        with pytest.raises(ConfigError, match=r"shadow_groups=.*consumer group names"):
            sink.install(shadow_groups=bad)
    with pytest.raises(TypeError, match="accepted options are shadow_groups"):
        sink.install(groups=["x"])
