"""kafka-python consumers in a shadow process, on Tansu: the primary group's offsets never move.

Created after ``install()`` in ``SHADOW_MODE``, a ``KafkaConsumer`` reads and commits in
``<group>-shadow``; one that kept the primary's group refuses to read and its commits are
suppressed; one without a group reads freely. The oracle is the broker's committed offsets
per group (admin client) and the primary consumer's own assignment.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition

from shadowguard import Kind, ShadowSideEffectBlocked, shadow
from shadowguard import _config as config
from shadowguard.integrations import kafka_python as sink
from tests.integrations._consumers import NONE, group, topic
from tests.integrations._support import installing
from tests.peers.kafka import KafkaBroker

__all__ = ["group", "topic"]  # fixtures

SINK = "kafka_python"


@pytest.fixture
def shadow_process() -> Iterator[None]:
    """``SHADOW_MODE=true`` in this process, with the integration installed."""
    with installing(sink):
        config.configure(mode="shadow")
        try:
            yield
        finally:
            config.reset()


def _consumer(broker: KafkaBroker, group_id: str | None, **extra: Any) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **extra,
    )


def _read(consumer: KafkaConsumer, topic: str, count: int) -> list[bytes]:
    if not consumer.assignment() and not consumer.subscription():
        consumer.assign([TopicPartition(topic, 0)])
    found: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(found) < count and time.monotonic() < deadline:
        for records in consumer.poll(200).values():
            found.extend(r.value for r in records)
    assert len(found) == count
    return found


def test_a_shadow_worker_reads_and_commits_in_its_own_group(
    kafka_broker: KafkaBroker, topic: str, group: str, shadow_process: None
) -> None:
    consumer = _consumer(kafka_broker, group)
    try:
        assert consumer.config["group_id"] == f"{group}-shadow"
        assert _read(consumer, topic, 5) == [f"m{i}".encode() for i in range(5)]
        consumer.commit()
    finally:
        consumer.close()
    assert kafka_broker.committed(f"{group}-shadow", topic) == {0: 5}
    assert kafka_broker.committed(group, topic) == {0: NONE}


def test_a_consumer_that_kept_the_primary_group_neither_reads_nor_commits(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """Created before ``install()``: refused in shadow, untouched as primary."""
    consumer = _consumer(kafka_broker, group)
    tp = TopicPartition(topic, 0)
    try:
        with installing(sink):
            config.configure(mode="shadow")
            try:
                with shadow() as scope:
                    for call in (
                        lambda: consumer.assign([tp]),
                        lambda: consumer.poll(0),
                        lambda: next(consumer),
                        lambda: consumer.subscribe([topic]),
                        lambda: consumer.seek_to_beginning(),
                        lambda: consumer.close(),
                    ):
                        with pytest.raises(ShadowSideEffectBlocked, match="shadow's own group"):
                            call()
                    assert consumer.commit({tp: OffsetAndMetadata(3, "", -1)}) is None
                    assert consumer.commit_async({tp: OffsetAndMetadata(4, "", -1)}).succeeded()
            finally:
                config.reset()
            assert kafka_broker.committed(group, topic) == {0: NONE}
            offsets = [s for s in scope.suppressed if s.kind == Kind.KAFKA_OFFSETS]
            assert [s.detail["offsets"] for s in offsets] == [[(topic, 0, 3)], [(topic, 0, 4)]]
            # As primary the same consumer works unchanged.
            assert len(_read(consumer, topic, 5)) == 5
            consumer.commit()
        assert kafka_broker.committed(group, topic) == {0: 5}
    finally:
        consumer.close()


def test_a_consumer_without_a_group_reads_in_shadow(
    kafka_broker: KafkaBroker, topic: str, shadow_process: None
) -> None:
    consumer = _consumer(kafka_broker, None)
    try:
        assert consumer.config["group_id"] is None
        assert len(_read(consumer, topic, 5)) == 5
    finally:
        consumer.close()


def test_a_shadow_member_never_takes_partitions_from_the_primary_group(
    kafka_broker: KafkaBroker, group: str
) -> None:
    """Both subscribe to the topic: the primary keeps every partition, and its offsets."""
    topic = kafka_broker.create_topic(partitions=2)
    timeouts = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}
    primary = _consumer(kafka_broker, group, **timeouts)
    primary.subscribe([topic])
    try:
        _wait_for(lambda: (primary.poll(100), len(primary.assignment()) == 2)[1])
        primary.commit({TopicPartition(topic, p): OffsetAndMetadata(0, "", -1) for p in (0, 1)})
        with installing(sink):
            with shadow():
                mirror = _consumer(kafka_broker, group, **timeouts)
                mirror.subscribe([topic])
                _wait_for(lambda: (mirror.poll(100), len(mirror.assignment()) == 2)[1])
                mirror.commit(
                    {TopicPartition(topic, p): OffsetAndMetadata(9, "", -1) for p in (0, 1)}
                )
                mirror.close()
            for _ in range(10):
                primary.poll(100)
        assert len(primary.assignment()) == 2
    finally:
        primary.close()
    assert kafka_broker.committed(group, topic, 2) == {0: 0, 1: 0}
    assert kafka_broker.committed(f"{group}-shadow", topic, 2) == {0: 9, 1: 9}


def _wait_for(done: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "condition not reached in time"


def test_an_empty_group_id_is_a_group_and_gets_the_suffix(
    kafka_broker: KafkaBroker, shadow_process: None
) -> None:
    """``group_id=""`` is a group to the client (None is none): the shadow one is "-shadow"."""
    consumer = _consumer(kafka_broker, "")
    try:
        assert consumer.config["group_id"] == "-shadow"
    finally:
        consumer.close()


def test_a_static_member_gets_the_suffix_too(kafka_broker: KafkaBroker, group: str) -> None:
    with installing(sink), shadow():
        consumer = _consumer(kafka_broker, group, group_instance_id="worker-1")
        try:
            assert consumer.config["group_instance_id"] == "worker-1-shadow"
        finally:
            consumer.close()


def test_the_suffix_setting_names_the_shadow_group(kafka_broker: KafkaBroker, group: str) -> None:
    """The setting confluent-kafka consumers use: one suffix for every Kafka client."""
    with installing(sink):
        config.configure(kafka_shadow_group_suffix=".canary")
        try:
            with shadow():
                consumer = _consumer(kafka_broker, group)
            consumer.close()
        finally:
            config.reset()
    assert consumer.config["group_id"] == f"{group}.canary"
