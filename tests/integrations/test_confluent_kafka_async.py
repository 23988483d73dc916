"""confluent-kafka guard, asyncio producers: in shadow, produce() settles its future at once and sends nothing.

The oracle is the Tansu broker of the session (tests/peers/kafka.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from confluent_kafka import KafkaException

from shadowguard import is_shadow, shadow
from shadowguard.integrations import confluent_kafka as guard_module
from tests.peers.kafka import KafkaBroker

SINK = "confluent_kafka"


@pytest.fixture
def topic(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.create_topic()


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_asyncio_producers(kafka_broker: KafkaBroker, topic: str) -> None:
    from confluent_kafka import aio

    if not hasattr(aio, "AsyncSerializingProducer"):
        pytest.skip("confluent-kafka before AsyncSerializingProducer (2.16)")
    AIOProducer, AsyncSerializingProducer = aio.AIOProducer, aio.AsyncSerializingProducer
    producer = AIOProducer(kafka_broker.config(), buffer_timeout=0.05)
    serializing = await AsyncSerializingProducer(
        kafka_broker.config(**{"value.serializer": lambda v, ctx: json.dumps(v).encode()}),
        buffer_timeout=0.05,
    )
    try:

        async def request(n: int, as_shadow: bool) -> Any:
            if as_shadow:
                async with shadow():
                    return await request(n, False)
            tag = "shadow" if is_shadow() else "primary"
            plain = await producer.produce(topic, f"{tag}-{n}".encode())
            typed = await serializing.produce(topic, value={tag: n})
            return await plain, await typed

        results = await asyncio.gather(*(request(n, n % 2 == 1) for n in range(10)))
        await producer.flush()
        await serializing.flush()
        for n, (plain, typed) in enumerate(results):
            tag = "shadow" if n % 2 else "primary"
            assert plain.value() == f"{tag}-{n}".encode()
            assert json.loads(typed.value()) == {tag: n}
            assert (plain.offset() is None) is (tag == "shadow")
        with shadow():
            too_large = await producer.produce(topic, b"x" * 2_000_000)
            with pytest.raises(KafkaException):
                await too_large
            assert await producer.init_transactions() is None
    finally:
        await producer.close()
        await serializing.close()
    expected = sorted(
        [f"primary-{n}".encode() for n in range(0, 10, 2)]
        + [json.dumps({"primary": n}).encode() for n in range(0, 10, 2)]
    )
    assert sorted(v for v in kafka_broker.values(topic) if v is not None) == expected


@pytest.mark.asyncio
async def test_guard_wraps_an_asyncio_producer(kafka_broker: KafkaBroker, topic: str) -> None:
    from confluent_kafka.aio import AIOProducer

    producer = guard_module.guard(AIOProducer(kafka_broker.config(), buffer_timeout=0.05))
    assert isinstance(producer, AIOProducer)
    try:
        with shadow():
            message = await (await producer.produce(topic, b"shadow"))
            await producer.flush()
        assert message.value() == b"shadow"
        await (await producer.produce(topic, b"primary"))
    finally:
        await producer.close()
    assert kafka_broker.values(topic) == [b"primary"]


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_asyncio_producer_rejects_headers_alike(kafka_broker: KafkaBroker) -> None:
    from confluent_kafka.aio import AIOProducer

    producer = AIOProducer(kafka_broker.config(), buffer_timeout=0)
    try:
        with pytest.raises(NotImplementedError):
            await producer.produce("orders", b"x", headers={"a": b"b"})
        with shadow(), pytest.raises(NotImplementedError):
            await producer.produce("orders", b"x", headers={"a": b"b"})
    finally:
        await producer.close()
