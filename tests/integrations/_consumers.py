"""What the consumer tests share: a filled topic, a fresh group name, reading by assign()."""

from __future__ import annotations

import time
import uuid
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from tests.peers.kafka import KafkaBroker

NONE = -1001  # OFFSET_INVALID: nothing committed


@pytest.fixture
def topic(kafka_broker: KafkaBroker) -> str:
    """A one-partition topic holding m0 .. m4."""
    name = kafka_broker.create_topic()
    producer = confluent_kafka.Producer(kafka_broker.config())
    for i in range(5):
        producer.produce(name, f"m{i}".encode())
    assert producer.flush(10) == 0
    return name


@pytest.fixture
def group() -> str:
    return f"orders-{uuid.uuid4().hex[:8]}"


def consumer_config(broker: KafkaBroker, group: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        **extra,
    }


def read(consumer: Any, topic: str, count: int) -> list[Any]:
    """``count`` messages from ``consumer``, assigning it the topic's partition if needed."""
    if not consumer.assignment():
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    found: list[Any] = []
    deadline = time.monotonic() + 10
    while len(found) < count and time.monotonic() < deadline:
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            found.append(message)
    assert len(found) == count
    return found
