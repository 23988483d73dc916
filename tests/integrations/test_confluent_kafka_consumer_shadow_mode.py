"""confluent-kafka consumers in a ``SHADOW_MODE=true`` process, in this one (``configure``).

Consumers created after ``install()`` read and commit in ``<group>-shadow``; every one that
kept the primary's group (created before ``install()``, or from a class taken before it)
refuses to consume and commits nothing; the asyncio consumers too, and ``doctor`` names the
stragglers. The oracle is the Tansu broker's committed offsets per group (admin client).
The subprocess test (test_confluent_kafka_consumer_process.py) runs a real worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import DeserializingConsumer, TopicPartition, cimpl

from shadowguard import Kind, ShadowSideEffectBlocked, shadow
from shadowguard import _config as config
from shadowguard.integrations import confluent_kafka as guard_module
from tests._cli import json_report
from tests.doctor._run import doctor, subjects, write
from tests.integrations._consumers import NONE, consumer_config, group, read, topic
from tests.peers.kafka import KafkaBroker

__all__ = ["group", "topic"]  # fixtures

SINK = "confluent_kafka"
# Taken at import, before any install(): what an application module imported first holds.
CLIENT_TYPE = cimpl.Consumer
EARLY_DESERIALIZING = DeserializingConsumer


class EarlyConsumer(cimpl.Consumer):
    """An application's subclass, defined before install()."""


@pytest.fixture
def shadow_mode(topic: str) -> Iterator[str]:
    """The whole process is shadow (after ``topic`` was filled, as primary)."""
    config.configure(mode="shadow")
    try:
        yield topic
    finally:
        config.reset()


EARLY_MAKERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "cimpl.Consumer taken before install": CLIENT_TYPE,
    "subclass defined before install": EarlyConsumer,
    "DeserializingConsumer taken before install": EARLY_DESERIALIZING,
}


@pytest.mark.parametrize(
    "make", [None, *EARLY_MAKERS.values()], ids=["created before install", *EARLY_MAKERS]
)
def test_consumers_that_kept_the_primary_group_refuse_to_consume(
    kafka_broker: KafkaBroker, topic: str, group: str, make: Any
) -> None:
    """Fail closed: subscribe/poll raise with the remedy, commit is suppressed; nothing stored."""
    consumer = (
        confluent_kafka.Consumer(consumer_config(kafka_broker, group)) if make is None else None
    )
    guard_module.install()
    config.configure(mode="shadow")
    try:
        if consumer is None:
            consumer = make(consumer_config(kafka_broker, group))
        with shadow() as scope:
            for call in (lambda: consumer.subscribe([topic]), lambda: consumer.poll(0)):
                with pytest.raises(ShadowSideEffectBlocked, match="before install\\(\\)") as e:
                    call()
                assert "call shadowguard.install() before creating the consumer" in str(e.value)
            assert consumer.commit(offsets=[TopicPartition(topic, 0, 3)]) is None
        assert [s.kind for s in scope.suppressed] == [
            Kind.KAFKA_CONSUME,
            Kind.KAFKA_CONSUME,
            Kind.KAFKA_OFFSETS,
        ]
    finally:
        config.reset()
        guard_module.uninstall()
        if consumer is not None:
            consumer.close()
    assert kafka_broker.committed(group, topic) == {0: NONE}


def _utf8(value: bytes | None, ctx: Any) -> str:
    return (value or b"").decode()


@pytest.mark.usefixtures("installed")
def test_consumers_created_in_a_shadow_process_use_the_shadow_group(
    kafka_broker: KafkaBroker, shadow_mode: str, group: str
) -> None:
    """Consumer and DeserializingConsumer: they read and commit, in ``<group>-shadow``."""
    topic = shadow_mode
    plain = confluent_kafka.Consumer(consumer_config(kafka_broker, group))
    typed = confluent_kafka.DeserializingConsumer(
        consumer_config(kafka_broker, group, **{"value.deserializer": _utf8})
    )
    try:
        assert isinstance(typed, DeserializingConsumer)
        assert [m.value() for m in read(plain, topic, 2)] == [b"m0", b"m1"]
        plain.commit(asynchronous=False)
        assert [m.value() for m in read(typed, topic, 3)] == ["m0", "m1", "m2"]
        typed.commit(asynchronous=False)
    finally:
        plain.close()
        typed.close()
    # Both joined the same shadow group: the last commit holds.
    assert kafka_broker.committed(f"{group}-shadow", topic) == {0: 3}
    assert kafka_broker.committed(group, topic) == {0: NONE}


@pytest.mark.usefixtures("installed")
def test_swapped_classes_keep_their_type_parameters(kafka_broker: KafkaBroker, group: str) -> None:
    """DeserializingConsumer[K, V] (and SerializingProducer[K, V]) still subscript after install()."""
    if not getattr(DeserializingConsumer, "__parameters__", ()):  # before confluent-kafka 2.16
        with pytest.raises(TypeError, match="not subscriptable"):
            confluent_kafka.DeserializingConsumer[str, str]
        return
    consumer = confluent_kafka.DeserializingConsumer[str, str](consumer_config(kafka_broker, group))
    try:
        assert type(consumer) is guard_module.GuardedDeserializingConsumer
    finally:
        consumer.close()
    producer = confluent_kafka.SerializingProducer[str, str](kafka_broker.config())
    assert type(producer) is guard_module.GuardedSerializingProducer
    with pytest.raises(TypeError, match="Too few arguments"):
        confluent_kafka.DeserializingConsumer[str]
    with pytest.raises(TypeError, match="not subscriptable"):
        confluent_kafka.Consumer[str, str]  # type: ignore[misc]


def test_install_in_a_shadow_process_names_consumer_classes_defined_before_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config.configure(mode="shadow")
    try:
        with caplog.at_level(logging.WARNING, logger="shadowguard"):
            guard_module.install()
    finally:
        guard_module.uninstall()
        config.reset()
    (warned,) = [r.getMessage() for r in caplog.records if "before install()" in r.getMessage()]
    assert f"{__name__}.EarlyConsumer" in warned
    assert "keep the primary's consumer group" in warned


async def _aio_read(consumer: Any, topic: str, count: int) -> list[Any]:
    await consumer.assign([TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
    found: list[Any] = []
    for _ in range(100):
        message = await consumer.poll(0.1)
        if message is not None and message.error() is None:
            found.append(message)
        if len(found) == count:
            break
    return found


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_asyncio_consumers_in_a_shadow_process(
    kafka_broker: KafkaBroker, shadow_mode: str, group: str
) -> None:
    """AIOConsumer and AsyncDeserializingConsumer build their consumer in the shadow group."""
    from confluent_kafka import aio

    topic = shadow_mode
    plain = aio.AIOConsumer(consumer_config(kafka_broker, group), max_workers=2)
    try:
        assert len(await _aio_read(plain, topic, 2)) == 2
        await plain.commit(asynchronous=False)
    finally:
        await plain.close()
    assert kafka_broker.committed(f"{group}-shadow", topic) == {0: 2}
    if hasattr(aio, "AsyncDeserializingConsumer"):  # confluent-kafka 2.16
        typed = await aio.AsyncDeserializingConsumer(
            consumer_config(kafka_broker, group, **{"value.deserializer": _utf8}), max_workers=2
        )
        try:
            assert [m.value() for m in await _aio_read(typed, topic, 4)] == ["m0", "m1", "m2", "m3"]
            await typed.commit(asynchronous=False)
        finally:
            await typed.close()
        assert kafka_broker.committed(f"{group}-shadow", topic) == {0: 4}
    assert kafka_broker.committed(group, topic) == {0: NONE}


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_shadow_request_on_a_primary_asyncio_consumer(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """Its calls run on worker threads without the request's context: guarded before them."""
    from confluent_kafka.aio import AIOConsumer

    consumer = AIOConsumer(consumer_config(kafka_broker, group), max_workers=2)
    try:
        taken = await _aio_read(consumer, topic, 2)
        await consumer.commit(asynchronous=False)
        async with shadow() as scope:
            assert await consumer.commit(message=taken[1]) is None
            positions = await consumer.commit(asynchronous=False)
            assert [(tp.topic, tp.offset) for tp in positions] == [(topic, 2)]
            with pytest.raises(ShadowSideEffectBlocked, match="poll\\(\\) in shadow"):
                await consumer.poll(0.1)
            with pytest.raises(ShadowSideEffectBlocked, match="seek\\(\\) in shadow"):
                await consumer.seek(TopicPartition(topic, 0, 4))
        assert scope.counts == {Kind.KAFKA_OFFSETS: 2, Kind.KAFKA_CONSUME: 2}
        await asyncio.sleep(0.3)  # an asynchronous commit that got through would have landed
        assert kafka_broker.committed(group, topic) == {0: 2}
        assert [m.value() for m in await _aio_read(consumer, topic, 1)] == [b"m0"]
    finally:
        await consumer.close()


@pytest.mark.usefixtures("installed")
def test_share_consumers_refuse_in_shadow(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """KIP-932 share groups have no shadow rule: from shadow they take and ack nothing."""
    share_consumer = getattr(confluent_kafka, "ShareConsumer", None)
    if share_consumer is None:
        pytest.skip("confluent-kafka before ShareConsumer")
    consumer = share_consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": group})
    try:
        with shadow() as scope:
            for call in (lambda: consumer.subscribe([topic]), lambda: consumer.poll(0)):
                with pytest.raises(ShadowSideEffectBlocked, match="share consumer") as e:
                    call()
                assert "no shadow group yet" in str(e.value)
            with pytest.raises(ShadowSideEffectBlocked):
                consumer.commit_async()
        assert scope.counts == {Kind.KAFKA_CONSUME: 3}
        consumer.subscribe([topic])  # as primary: the client's own
        assert consumer.subscription() == [topic]
    finally:
        consumer.close()


def test_doctor_names_a_consumer_that_kept_the_primary_group(
    tmp_path: Path, kafka_broker: KafkaBroker
) -> None:
    write(
        tmp_path,
        "worker.py",
        """\
        import os

        import confluent_kafka
        from fastapi import FastAPI

        import shadowguard

        CONFIG = {"bootstrap.servers": os.environ["ORDERS_KAFKA"], "group.id": "orders"}
        early = confluent_kafka.Consumer(CONFIG)
        shadowguard.install("confluent_kafka")
        late = confluent_kafka.Consumer(CONFIG)
        app = FastAPI()
        """,
    )
    env = {"ORDERS_KAFKA": kafka_broker.bootstrap}
    data = json_report(doctor(tmp_path, "worker:app", "--json", SHADOW_MODE="true", **env))
    assert subjects(data) == ["confluent_kafka Consumer"]
    assert "worker.early" in data["unguarded"][0]["problem"]
    assert "before creating it" in data["unguarded"][0]["remedy"]
    clients = {c["name"]: c["guarded"] for c in data["live_clients"]}
    assert clients == {"worker.early": False, "worker.late": True}
    # In the primary deployment the guard covers both: shadow requests cannot use either.
    data = json_report(doctor(tmp_path, "worker:app", "--json", SHADOW_MODE="false", **env))
    assert {c["name"]: c["guarded"] for c in data["live_clients"]} == clients | {
        "worker.early": True
    }
