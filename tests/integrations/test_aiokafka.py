"""aiokafka producers and consumers on the Tansu broker: shadow stores and commits nothing.

The oracle is the broker: a reader from the beginning of the topic, and the committed offsets
per group (admin client). Producers are started before ``install()``: the guard is on the class.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import IllegalOperation, MessageSizeTooLargeError
from aiokafka.structs import RecordMetadata, TopicPartition

import shadowguard
from shadowguard import Kind, ShadowSideEffectBlocked
from shadowguard import _config as config
from shadowguard.integrations import aiokafka as sink
from tests.integrations._consumers import NONE, group, topic
from tests.integrations._support import installing, raising
from tests.peers.kafka import KafkaBroker

__all__ = ["group", "topic"]  # fixtures

SINK = "aiokafka"
pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def producer(kafka_broker: KafkaBroker) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer, created before ``install()``, with JSON values and text keys."""
    made = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap,
        value_serializer=lambda v: json.dumps(v).encode(),
        key_serializer=lambda k: k.encode() if isinstance(k, str) else k,
        max_request_size=300,
    )
    await made.start()
    yield made
    await made.stop()


async def _orders(producer: AIOKafkaProducer, topic: str, tag: str) -> list[Any]:
    """The application code under test: the same in shadow and in primary."""
    first = await producer.send(topic, {"order": f"{tag}-0"}, key="k0", headers=[("h", b"v")])
    second = await producer.send_and_wait(topic, {"order": f"{tag}-1"}, key="k1")
    return [await first, second]


async def test_shadow_sends_store_nothing_and_primary_sends_are_stored(
    producer: AIOKafkaProducer, kafka_broker: KafkaBroker
) -> None:
    topic = kafka_broker.create_topic()
    with installing(sink):
        with shadowguard.shadow() as scope:
            shadow_results = await _orders(producer, topic, "shadow")
        primary_results = await _orders(producer, topic, "primary")
    assert kafka_broker.values(topic) == [
        json.dumps({"order": f"primary-{i}"}).encode() for i in range(2)
    ]
    assert [r.offset for r in primary_results] == [0, 1]
    for result in shadow_results:
        assert isinstance(result, RecordMetadata)
        assert (result.topic, result.partition, result.offset, result.timestamp_type) == (
            topic,
            0,
            -1,
            0,
        )
    assert [(s.kind, s.target, s.detail["key"]) for s in scope.suppressed] == [
        (Kind.KAFKA_PRODUCE, topic, "k0"),
        (Kind.KAFKA_PRODUCE, topic, "k1"),
    ]


async def test_shadow_batches_store_nothing(
    producer: AIOKafkaProducer, kafka_broker: KafkaBroker
) -> None:
    topic = kafka_broker.create_topic()
    with installing(sink):
        for shadow in (True, False):
            batch = producer.create_batch()
            for i in range(3):
                assert batch.append(key=None, value=f"{shadow}-{i}", timestamp=None) is not None
            if shadow:
                with shadowguard.shadow() as scope:
                    metadata = await (await producer.send_batch(batch, topic, partition=0))
                assert metadata.offset == -1
            else:
                assert (await (await producer.send_batch(batch, topic, partition=0))).offset == 0
    assert kafka_broker.values(topic) == [f'"False-{i}"'.encode() for i in range(3)]
    assert scope.suppressed[0].detail["records"] == 3


async def test_shadow_raises_what_the_client_raises(
    producer: AIOKafkaProducer, kafka_broker: KafkaBroker
) -> None:
    topic = kafka_broker.create_topic()
    await producer.send_and_wait(topic, {"warm": 1})
    cases: list[tuple[dict[str, Any], type[BaseException]]] = [
        ({"value": "x" * 400}, MessageSizeTooLargeError),
        ({"value": None, "key": None}, AssertionError),
        ({"value": {}, "partition": 5}, AssertionError),
        ({"value": {1, 2}}, TypeError),
    ]
    with installing(sink):
        for kwargs, error in cases:
            with pytest.raises(error):
                await producer.send(topic, **kwargs)
            with shadowguard.shadow() as scope, pytest.raises(error):
                await producer.send(topic, **kwargs)
            assert [type(s.error) for s in scope.suppressed] == [error], kwargs
    assert kafka_broker.values(topic) == [b'{"warm": 1}']


async def test_shadow_transactions_reach_nothing(kafka_broker: KafkaBroker) -> None:
    """Shadow transaction calls and sends are recorded, and the broker stores nothing.

    The producer is never started: aiokafka asks for a producer id with InitProducerId v0,
    which Tansu answers with UNKNOWN_SERVER_ERROR, so a transactional aiokafka producer
    cannot start on Tansu and primary transactions cannot be shown here. The shadow path
    never needs the broker.
    """
    topic = kafka_broker.create_topic()
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap, transactional_id=f"tx-{topic}"
    )
    with installing(sink), shadowguard.shadow() as scope:
        async with producer.transaction():
            await producer.send(topic, b"shadow")
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({TopicPartition(topic, 0): 1}, "orders")
        await producer.abort_transaction()
    assert kafka_broker.values(topic) == []
    assert [s.detail["operation"] for s in scope.suppressed] == [
        "begin_transaction",
        "send",
        "commit_transaction",
        "begin_transaction",
        "send_offsets_to_transaction",
        "abort_transaction",
    ]
    assert scope.suppressed[0].target == f"tx-{topic}"


async def test_shadow_transaction_on_a_plain_producer_raises_as_the_client(
    producer: AIOKafkaProducer,
) -> None:
    with installing(sink), shadowguard.shadow(), pytest.raises(IllegalOperation):
        await producer.begin_transaction()


async def test_concurrent_tasks_keep_shadow_and_primary_apart(
    producer: AIOKafkaProducer, kafka_broker: KafkaBroker
) -> None:
    topic = kafka_broker.create_topic()

    async def work(shadow: bool, n: int) -> None:
        for i in range(20):
            if shadow:
                with shadowguard.shadow():
                    await producer.send(topic, f"s{n}-{i}")
            else:
                await producer.send(topic, f"p{n}-{i}")
            await asyncio.sleep(0)

    with installing(sink):
        await asyncio.gather(*(work(n % 2 == 0, n) for n in range(6)))
        await producer.flush()
    stored = sorted(json.loads(v or b"") for v in kafka_broker.values(topic))
    assert stored == sorted(f"p{n}-{i}" for n in (1, 3, 5) for i in range(20))


def _consumer(broker: KafkaBroker, group_id: str | None) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def _read(consumer: AIOKafkaConsumer, topic: str, count: int) -> list[bytes]:
    consumer.assign([TopicPartition(topic, 0)])
    found: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(found) < count and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            found.extend(r.value for r in records)
    return found


async def test_a_shadow_worker_reads_and_commits_in_its_own_group(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    with installing(sink):
        config.configure(mode="shadow")
        try:
            consumer = _consumer(kafka_broker, group)
            await consumer.start()
            try:
                assert consumer._group_id == f"{group}-shadow"
                assert await _read(consumer, topic, 5) == [f"m{i}".encode() for i in range(5)]
                await consumer.commit()
            finally:
                await consumer.stop()
        finally:
            config.reset()
    assert kafka_broker.committed(f"{group}-shadow", topic) == {0: 5}
    assert kafka_broker.committed(group, topic) == {0: NONE}


async def test_a_consumer_that_kept_the_primary_group_neither_reads_nor_commits(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    consumer = _consumer(kafka_broker, group)
    tp = TopicPartition(topic, 0)
    with installing(sink):
        with shadowguard.shadow() as scope:
            for call in (consumer.start, consumer.getone, consumer.getmany, consumer.stop):
                with pytest.raises(ShadowSideEffectBlocked, match="shadow's own group"):
                    await call()
            with pytest.raises(ShadowSideEffectBlocked):
                consumer.assign([tp])
            assert await consumer.commit({tp: 3}) is None
        assert scope.suppressed[-1].detail["offsets"] == [(topic, 0, 3)]
        # As primary the same consumer works unchanged.
        await consumer.start()
        try:
            assert len(await _read(consumer, topic, 5)) == 5
            await consumer.commit()
        finally:
            await consumer.stop()
    assert kafka_broker.committed(group, topic) == {0: 5}


async def test_a_consumer_without_a_group_reads_in_shadow(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    with installing(sink), shadowguard.shadow():
        consumer = _consumer(kafka_broker, None)
        await consumer.start()
        try:
            assert len(await _read(consumer, topic, 5)) == 5
        finally:
            await consumer.stop()


async def test_guarded_send_is_still_a_coroutine_function_that_raises_when_awaited(
    producer: AIOKafkaProducer, kafka_broker: KafkaBroker
) -> None:
    """Frameworks check ``iscoroutinefunction``; a shadow error surfaces at ``await``, as the client's."""
    import inspect

    with installing(sink):
        for name in ("send", "send_batch", "begin_transaction"):
            assert asyncio.iscoroutinefunction(getattr(producer, name)), name
            if sys.version_info >= (3, 12):  # before, nothing marks a plain function for inspect
                assert inspect.iscoroutinefunction(getattr(AIOKafkaProducer, name)), name
        with shadowguard.shadow() as scope:
            pending = producer.send("topic", None, key=None)
            assert scope.suppressed == []
            with pytest.raises(AssertionError):
                await pending
    assert len(scope.suppressed) == 1
    assert vars(AIOKafkaProducer)["send"].__name__ == "send"


async def test_a_send_started_in_shadow_stays_shadow_when_awaited_later(
    producer: AIOKafkaProducer, kafka_broker: KafkaBroker
) -> None:
    """The decision is taken when ``send()`` is called, the way the client binds its arguments."""
    topic = kafka_broker.create_topic()
    with installing(sink):
        with shadowguard.shadow():
            shadow_send = producer.send(topic, "shadow")
        primary_send = producer.send(topic, "primary")
        with shadowguard.shadow():
            primary = await (await primary_send)
        shadowed = await (await shadow_send)
    assert (primary.offset, shadowed.offset) == (0, -1)
    assert kafka_broker.values(topic) == [b'"primary"']


async def test_a_cancelled_shadow_send_sends_nothing(
    producer: AIOKafkaProducer, kafka_broker: KafkaBroker
) -> None:
    topic = kafka_broker.create_topic()
    with installing(sink), shadowguard.shadow():
        task = asyncio.ensure_future(producer.send_and_wait(topic, "shadow"))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await producer.flush()
    assert kafka_broker.values(topic) == []


async def test_a_fault_inside_the_guard_fails_closed_and_primary_is_untouched(
    producer: AIOKafkaProducer, kafka_broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = kafka_broker.create_topic()
    with installing(sink):
        await producer.send_and_wait(topic, "primary-1")
        monkeypatch.setattr(producer, "_serialize", raising("serialize broke"))
        with shadowguard.shadow() as scope, pytest.raises(RuntimeError, match="broke"):
            await producer.send(topic, "shadow")
        monkeypatch.undo()
        await producer.send_and_wait(topic, "primary-2")
    assert kafka_broker.values(topic) == [b'"primary-1"', b'"primary-2"']
    assert isinstance(scope.suppressed[0].error, RuntimeError)


async def test_the_suffix_setting_names_the_shadow_group(
    kafka_broker: KafkaBroker, group: str
) -> None:
    with installing(sink):
        config.configure(kafka_shadow_group_suffix=".canary")
        try:
            with shadowguard.shadow():
                consumer = _consumer(kafka_broker, group)
        finally:
            config.reset()
    assert consumer._group_id == f"{group}.canary"
