"""The Redis server at 127.0.0.1:6379, its own database index, and a key prefix per test.

The server is shared by every test on the machine: tests use database
``SHADOWGUARD_TEST_REDIS_DB`` (11 by default) and keys under a prefix of their own, deleted
afterwards. The oracle is a plain client used outside any shadow scope.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.peers.services import service_missing

REDIS_HOST = os.environ.get("SHADOWGUARD_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("SHADOWGUARD_TEST_REDIS_PORT", "6379"))
REDIS_DB = int(os.environ.get("SHADOWGUARD_TEST_REDIS_DB", "11"))


@dataclass
class RedisPeer:
    """Where the server is, this test's key prefix, and the oracle client."""

    host: str
    port: int
    db: int
    prefix: str
    oracle: Any

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"

    def key(self, name: str) -> str:
        """``name`` under this test's prefix."""
        return f"{self.prefix}{name}"

    def keys(self) -> set[str]:
        """This test's keys that exist on the server now (names without the prefix)."""
        found = self.oracle.scan_iter(match=f"{self.prefix}*", count=1000)
        return {k.decode()[len(self.prefix) :] for k in found}


@pytest.fixture(scope="session")
def _redis_oracle() -> Iterator[Any]:
    try:
        import redis
    except ImportError:
        service_missing("redis-py (the Redis client)")
    oracle = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=5)
    try:
        oracle.ping()
    except redis.exceptions.ConnectionError as exc:
        oracle.close()
        service_missing(f"Redis at {REDIS_HOST}:{REDIS_PORT} ({exc})")
    yield oracle
    oracle.close()


@pytest.fixture
def redis_peer(_redis_oracle: Any) -> Iterator[RedisPeer]:
    """The Redis server with a fresh key prefix; this test's keys are deleted afterwards."""
    peer = RedisPeer(
        REDIS_HOST, REDIS_PORT, REDIS_DB, f"sg:{uuid.uuid4().hex[:10]}:", _redis_oracle
    )
    try:
        yield peer
    finally:
        stale = list(_redis_oracle.scan_iter(match=f"{peer.prefix}*", count=1000))
        if stale:
            _redis_oracle.delete(*stale)


@pytest.fixture
def redis_client(redis_peer: RedisPeer) -> Iterator[Any]:
    """A redis-py client of the test database (typed Any: redis-py's annotations do not chain)."""
    import redis

    client: Any = redis.Redis.from_url(redis_peer.url, socket_timeout=5)
    try:
        yield client
    finally:
        client.close()
