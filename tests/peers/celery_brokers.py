"""Brokers for the Celery tests: RabbitMQ at 127.0.0.1:5672 and Redis at 127.0.0.1:6379.

Both servers are shared by every test on the machine: each test gets queue names of its own
(deleted afterwards); the Redis broker and result backend use database
``SHADOWGUARD_TEST_CELERY_REDIS_DB`` (12 by default), apart from the redis tests' database.
The oracle asks the broker directly how many messages wait in a queue.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.peers.redis import REDIS_HOST, REDIS_PORT
from tests.peers.services import service_missing

RABBITMQ_URL = os.environ.get(
    "SHADOWGUARD_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//"
)
CELERY_REDIS_DB = int(os.environ.get("SHADOWGUARD_TEST_CELERY_REDIS_DB", "12"))
BACKEND_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{CELERY_REDIS_DB}"


@dataclass
class Broker:
    """A broker, a name prefix of this test's own, and what to delete afterwards."""

    kind: str  # "rabbitmq" or "redis"
    url: str
    prefix: str
    queues: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)

    def queue(self, name: str) -> str:
        """A queue name of this test's own (deleted afterwards)."""
        full = f"{self.prefix}{name}"
        self.queues.append(full)
        return full

    def exchange(self, name: str) -> str:
        full = f"{self.prefix}{name}"
        self.exchanges.append(full)
        return full

    def depth(self, queue: str) -> int:
        """Messages waiting in ``queue`` (0 for a queue that does not exist)."""
        if self.kind == "redis":
            import redis

            with redis.Redis.from_url(self.url) as client:
                return int(client.llen(queue))
        import amqp

        with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest") as conn:
            conn.connect()
            channel = conn.channel()
            try:
                _, count, _ = channel.queue_declare(queue, passive=True)
            except amqp.exceptions.NotFound:
                return 0
            return int(count)

    def clean(self) -> None:
        if self.kind == "redis":
            import redis

            with redis.Redis.from_url(self.url) as client:
                stale = [k for q in self.queues for k in client.scan_iter(match=f"{q}*")]
                stale += list(client.scan_iter(match=f"_kombu.binding.{self.prefix}*"))
                if stale:
                    client.delete(*stale)
            return
        import amqp

        with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest") as conn:
            conn.connect()
            channel = conn.channel()
            for queue in self.queues:
                channel.queue_delete(queue)
            for exchange in self.exchanges:
                channel.exchange_delete(exchange)


def _reachable(kind: str) -> None:
    if kind == "redis":
        try:
            import redis

            with redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=5) as client:
                client.ping()
        except Exception as exc:
            service_missing(f"Redis at {REDIS_HOST}:{REDIS_PORT} ({exc})")
        return
    try:
        import amqp

        with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest") as conn:
            conn.connect()
    except Exception as exc:
        service_missing(f"RabbitMQ at 127.0.0.1:5672 ({exc})")


@pytest.fixture(params=["rabbitmq", "redis"])
def celery_broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """RabbitMQ, then Redis as the Celery broker, with names of this test's own."""
    kind = request.param
    _reachable(kind)
    url = RABBITMQ_URL if kind == "rabbitmq" else BACKEND_URL
    broker = Broker(kind, url, f"sg-{uuid.uuid4().hex[:10]}-")
    try:
        yield broker
    finally:
        broker.clean()


@pytest.fixture
def rabbitmq_broker() -> Iterator[Broker]:
    """RabbitMQ alone (for exchanges Redis cannot mirror)."""
    _reachable("rabbitmq")
    broker = Broker("rabbitmq", RABBITMQ_URL, f"sg-{uuid.uuid4().hex[:10]}-")
    try:
        yield broker
    finally:
        broker.clean()
