"""``--shadowguard-audit`` on a suite that writes to Redis: counted per test, nothing written."""

from __future__ import annotations

import pytest

from tests.peers.redis import RedisPeer

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest
import shadowguard


@pytest.fixture(scope="session", autouse=True)
def guards():
    shadowguard.install("redis")
    yield
    shadowguard.uninstall("redis")
"""

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
    pytester.makeconftest(CONFTEST)
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        f"shadowguard_allow_hosts = {redis_peer.host}:{redis_peer.port}\n"
    )
    pytester.makepyfile(test_inner=TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--shadowguard-audit", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "1 test(s) ran as shadow traffic, 0 leaked (audit: *)",
            "suppressed by guards in test_inner.py::test_places_an_order: redis.command=2",
        ]
    )
    assert redis_peer.keys() == set()
