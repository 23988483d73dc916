"""confluent-kafka guard, activation: install() swaps guarded classes in, guard() wraps older producers.

What reached the broker is read back from the Tansu broker of the session
(tests/peers/kafka.py).
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import KafkaException

import shadowguard
from shadowguard import is_shadow, shadow
from shadowguard.integrations import confluent_kafka as guard_module
from shadowguard.integrations.confluent_kafka._swap import is_guarded, unguarded_subclasses
from tests.peers.kafka import DeliveryReports, KafkaBroker, produce_orders


@pytest.fixture
def topic(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.create_topic()


def install_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """install(), and the warnings it logged about unguarded producer classes."""
    with caplog.at_level(logging.WARNING, logger="shadowguard"):
        guard_module.install()
    return [r.getMessage() for r in caplog.records if "unguarded" in r.getMessage()]


def test_install_swaps_classes_and_uninstall_restores() -> None:
    originals = (confluent_kafka.Producer, confluent_kafka.SerializingProducer)
    shadowguard.install("confluent_kafka")
    try:
        shadowguard.install("confluent_kafka")
        assert confluent_kafka.Producer is guard_module.GuardedProducer
        assert confluent_kafka.SerializingProducer is guard_module.GuardedSerializingProducer
        from confluent_kafka import aio

        assert aio.AIOProducer is guard_module.GuardedAIOProducer
        assert getattr(aio, "AsyncSerializingProducer", None) is (
            guard_module.GuardedAsyncSerializingProducer
        )
    finally:
        shadowguard.uninstall()
    assert (confluent_kafka.Producer, confluent_kafka.SerializingProducer) == originals


def test_isinstance_keeps_working_for_producers_created_before_install() -> None:
    from confluent_kafka.aio import AIOProducer

    raw = confluent_kafka.Producer({"bootstrap.servers": "127.0.0.1:9"})
    raw_sp = confluent_kafka.SerializingProducer({"bootstrap.servers": "127.0.0.1:9"})
    with_install = guard_module.GuardedSerializingProducer({"bootstrap.servers": "127.0.0.1:9"})
    shadowguard.install("confluent_kafka")
    try:
        assert isinstance(raw, confluent_kafka.Producer)
        assert isinstance(raw_sp, confluent_kafka.Producer)
        assert isinstance(raw_sp, confluent_kafka.SerializingProducer)
        assert not isinstance(raw, confluent_kafka.SerializingProducer)
        assert isinstance(with_install, confluent_kafka.cimpl.Producer)
        assert issubclass(confluent_kafka.cimpl.Producer, confluent_kafka.Producer)
        assert issubclass(guard_module.GuardedAIOProducer, AIOProducer)

        class Custom(confluent_kafka.Producer):
            pass

        assert not isinstance(raw, Custom)
        assert guard_module.guard(raw) is not raw
        assert guard_module.guard(with_install) is with_install
    finally:
        shadowguard.uninstall()
    from confluent_kafka import aio

    assert aio.AIOProducer.__module__.startswith("confluent_kafka")


def test_guard_wraps_a_producer_created_before_install(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    raw = confluent_kafka.Producer(kafka_broker.config(**{"message.max.bytes": 2000}))
    producer = guard_module.guard(raw, config={"message.max.bytes": 2000})
    assert guard_module.guard(producer) is producer
    assert isinstance(producer, confluent_kafka.Producer)
    reports = DeliveryReports()
    with producer as entered:
        assert entered is producer
        with shadow():
            produce_orders(producer, topic, "shadow", reports)
            with pytest.raises(KafkaException):
                producer.produce(topic, b"x" * 2000)
        produce_orders(producer, topic, "primary", reports)
    assert reports.values(shadow_only=True) == [b"shadow-0", b"shadow-1", b"shadow-2"]
    assert kafka_broker.values(topic) == [b"primary-0", b"primary-1", b"primary-2"]


def test_install_names_producer_subclasses_defined_before_it(
    kafka_broker: KafkaBroker, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Such a subclass inherits from the unguarded class: install() says so and how to fix."""

    class EarlyProducer(confluent_kafka.Producer):
        pass

    warned = install_warnings(caplog)
    try:
        assert len(warned) == 1
        assert f"{__name__}.{EarlyProducer.__qualname__}" in warned[0]
        assert "guard(producer)" in warned[0]

        class LateProducer(confluent_kafka.Producer):
            pass

        assert is_guarded(LateProducer(kafka_broker.config()))
        assert not is_guarded(EarlyProducer(kafka_broker.config()))
        assert LateProducer not in unguarded_subclasses([confluent_kafka.cimpl.Producer])
        producer = guard_module.guard(EarlyProducer(kafka_broker.config()))
        reports = DeliveryReports()
        with shadow():
            produce_orders(producer, topic, "shadow", reports)
        produce_orders(producer, topic, "primary", reports)
    finally:
        guard_module.uninstall()
        del EarlyProducer
        gc.collect()
    assert kafka_broker.values(topic) == [b"primary-0", b"primary-1", b"primary-2"]


def test_guard_wraps_a_serializing_producer(kafka_broker: KafkaBroker, topic: str) -> None:
    seen: list[Any] = []

    def upper(obj: Any, ctx: Any) -> bytes:
        seen.append((ctx.field, is_shadow()))
        return str(obj).upper().encode()

    raw = confluent_kafka.SerializingProducer(kafka_broker.config(**{"value.serializer": upper}))
    producer = guard_module.guard(raw)
    assert isinstance(producer, confluent_kafka.SerializingProducer)
    reports = DeliveryReports()
    with shadow():
        producer.produce(topic, value="shadow", on_delivery=reports)
        producer.flush(10)
    producer.produce(topic, value="primary")
    producer.flush(10)
    assert seen == [("value", True), ("value", False)]
    assert reports.values() == [b"SHADOW"]
    assert kafka_broker.values(topic) == [b"PRIMARY"]


def test_guard_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="confluent_kafka producer"):
        guard_module.guard(object())


def test_install_refuses_options() -> None:
    with pytest.raises(TypeError, match="confluent_kafka integration got unknown option"):
        guard_module.install(transactions=False)
    assert not guard_module._patches.installed


def test_install_names_asyncio_producer_subclasses_defined_before_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An AIOProducer subclass defined before install() is named too (the original class's)."""
    from confluent_kafka.aio import AIOProducer

    class EarlyAIOProducer(AIOProducer):
        pass

    warned = install_warnings(caplog)
    try:
        assert len(warned) == 1
        assert f"{__name__}.{EarlyAIOProducer.__qualname__}" in warned[0]
    finally:
        guard_module.uninstall()
        del EarlyAIOProducer
        gc.collect()
