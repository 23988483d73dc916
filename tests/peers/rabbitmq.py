"""The RabbitMQ server at 127.0.0.1:5672 (guest/guest), names of this test's own, an oracle.

The server is shared by every test on the machine: each test gets a name prefix, and every
queue and exchange under it is deleted afterwards. The oracle is a pika ``BlockingConnection``
used outside any shadow scope; it counts a queue's ready messages with a passive
``queue_declare`` (the management API may not be enabled).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.peers.services import service_missing

RABBITMQ_HOST = os.environ.get("SHADOWGUARD_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("SHADOWGUARD_TEST_RABBITMQ_PORT", "5672"))


@dataclass
class RabbitPeer:
    """Where the server is, this test's name prefix, and the oracle's channel."""

    host: str
    port: int
    prefix: str
    oracle: Any
    queues: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/"

    def parameters(self) -> Any:
        import pika

        return pika.ConnectionParameters(
            self.host, self.port, credentials=pika.PlainCredentials("guest", "guest")
        )

    def connect(self) -> Any:
        """A new ``BlockingConnection`` (the caller closes it)."""
        import pika

        return pika.BlockingConnection(self.parameters())

    def name(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def queue(self, name: str) -> str:
        """Declare the queue ``name`` (under the prefix) as primary; its full name."""
        full = self.name(name)
        self.oracle.queue_declare(full)
        self.queues.append(full)
        return full

    def fanout(self, name: str, *queues: str) -> str:
        """Declare a fanout exchange with ``queues`` bound to it; its full name."""
        full = self.name(name)
        self.oracle.exchange_declare(full, exchange_type="fanout")
        self.exchanges.append(full)
        for queue in queues:
            self.oracle.queue_bind(queue, full)
        return full

    def depth(self, queue: str) -> int:
        """The queue's ready messages, as the broker counts them now."""
        return int(self.oracle.queue_declare(queue, passive=True).method.message_count)

    def exists(self, queue: str) -> bool:
        return self._declared(lambda channel: channel.queue_declare(queue, passive=True))

    def exchange_exists(self, exchange: str) -> bool:
        return self._declared(lambda channel: channel.exchange_declare(exchange, passive=True))

    def _declared(self, declare: Callable[[Any], object]) -> bool:
        """Does the passive ``declare`` succeed, on a connection of its own?"""
        conn = self.connect()
        try:
            declare(conn.channel())
        except Exception:
            return False
        finally:
            if conn.is_open:
                conn.close()
        return True

    def publish(self, queue: str, body: bytes) -> None:
        """Publish to ``queue`` through the default exchange, confirmed by the broker."""
        self.oracle.basic_publish("", queue, body)

    def bodies_until(self, queue: str, last: bytes, wait: float = 10.0) -> list[bytes]:
        """Consume ``queue`` (acked) until ``last`` arrives; every body taken, oldest first.

        For a publish without confirms, whose arrival no round trip proves: a channel's
        messages arrive in order, so what was published before ``last`` came before it.
        ``wait`` bounds a broken run; it is not a timing the test asserts.
        """
        out: list[bytes] = []
        for method, _, body in self.oracle.consume(queue, auto_ack=True, inactivity_timeout=wait):
            if method is None:
                break
            out.append(body)
            if body == last:
                break
        self.oracle.cancel()
        return out

    def bodies(self, queue: str) -> list[bytes]:
        """Take every ready message off ``queue`` (acked), oldest first."""
        out: list[bytes] = []
        while True:
            method, _, body = self.oracle.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append(body)


@pytest.fixture(scope="session")
def _rabbit_parameters() -> Any:
    """The server's connection parameters, once it answered (else ``service_missing``)."""
    try:
        import pika
    except ImportError:
        service_missing("pika (the RabbitMQ client)")
    parameters = pika.ConnectionParameters(
        RABBITMQ_HOST, RABBITMQ_PORT, credentials=pika.PlainCredentials("guest", "guest")
    )
    try:
        pika.BlockingConnection(parameters).close()
    except pika.exceptions.AMQPConnectionError as exc:
        service_missing(f"RabbitMQ at {RABBITMQ_HOST}:{RABBITMQ_PORT} ({exc!r})")
    return parameters


@pytest.fixture
def rabbit(_rabbit_parameters: Any) -> Iterator[RabbitPeer]:
    """The RabbitMQ server with a fresh name prefix; this test's queues and exchanges are
    deleted afterwards. The oracle channel has publisher confirms on.

    The oracle's connection is the test's own: one kept for the session sits idle between
    tests, answers no heartbeats, and the server closes it.
    """
    import pika

    conn = pika.BlockingConnection(_rabbit_parameters)
    channel = conn.channel()
    channel.confirm_delivery()
    peer = RabbitPeer(RABBITMQ_HOST, RABBITMQ_PORT, f"sg-{uuid.uuid4().hex[:10]}-", channel)
    try:
        yield peer
    finally:
        try:
            cleanup = conn.channel()
            for queue in peer.queues:
                cleanup.queue_delete(queue)
            for exchange in peer.exchanges:
                cleanup.exchange_delete(exchange)
        finally:
            if conn.is_open:
                conn.close()
