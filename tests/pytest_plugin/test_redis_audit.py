"""``--shadowguard-audit`` on a suite that writes to Redis: counted per test, nothing written."""

from __future__ import annotations

import pytest

from tests.peers.redis import RedisPeer
from tests.pytest_plugin._audit import guards_conftest, run_audit

pytest_plugins = ["pytester"]

TESTS = """
import os

import redis


def test_places_an_order():
    r = redis.Redis.from_url(os.environ["SG_REDIS_URL"])
    assert r.set(os.environ["SG_REDIS_PREFIX"] + "order", "1") is True
    assert r.xadd(os.environ["SG_REDIS_PREFIX"] + "events", {"order": "1"})
    r.close()
"""


def test_audit_counts_redis_suppressions_and_redis_keeps_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, redis_peer: RedisPeer
) -> None:
    monkeypatch.setenv("SG_REDIS_URL", redis_peer.url)
    monkeypatch.setenv("SG_REDIS_PREFIX", redis_peer.prefix)
    run_audit(
        pytester,
        TESTS,
        guards_conftest("redis"),
        allow_hosts=f"{redis_peer.host}:{redis_peer.port}",
        suppressed={"test_places_an_order": "redis.command=2"},
    )
    assert redis_peer.keys() == set()
