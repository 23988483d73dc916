"""confluent-kafka guard: every way around install()'s swap refuses in shadow, loudly.

A producer class taken before ``install()`` (the C type ``cimpl.Producer``, ``from
confluent_kafka import Producer`` in a module imported first, ``SerializingProducer``,
``AIOProducer``), a subclass defined before it, a producer created before it: in shadow
they raise ``ShadowSideEffectBlocked`` instead of sending. The oracle is the Tansu broker of
the session (tests/peers/kafka.py), read from the beginning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import SerializingProducer, cimpl

from shadowguard import Kind, ShadowSideEffectBlocked, is_shadow, shadow
from shadowguard.integrations import confluent_kafka as guard_module

# The asyncio classes as the guard imported them, before any install() (None where absent).
from shadowguard.integrations.confluent_kafka._asyncio import AIOProducer, AsyncSerializingProducer
from tests.peers.kafka import DeliveryReports, KafkaBroker

SINK = "confluent_kafka"
# Taken at import, before any install(): what an application module imported first holds.
CLIENT_TYPE = cimpl.Producer
EARLY_SERIALIZING = SerializingProducer


class EarlyProducer(cimpl.Producer):
    """An application's subclass, defined before install()."""


class EarlySerializingProducer(SerializingProducer):
    """The same for the serializing producer."""


def _utf8(obj: Any, ctx: Any) -> bytes:
    return obj if isinstance(obj, bytes) else str(obj).encode()


EARLY_MAKERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "cimpl.Producer taken before install": CLIENT_TYPE,
    "subclass defined before install": EarlyProducer,
    "SerializingProducer taken before install": lambda c: EARLY_SERIALIZING(
        {**c, "value.serializer": _utf8}
    ),
    "SerializingProducer subclass defined before install": lambda c: EarlySerializingProducer(c),
}


@pytest.fixture
def topic(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.create_topic()


def refused(call: Callable[[], Any]) -> ShadowSideEffectBlocked:
    with pytest.raises(ShadowSideEffectBlocked) as caught:
        call()
    assert "guard(producer" in str(caught.value)
    return caught.value


@pytest.mark.parametrize("make", EARLY_MAKERS.values(), ids=EARLY_MAKERS.keys())
@pytest.mark.usefixtures("installed")
def test_unguarded_producer_refuses_in_shadow(
    kafka_broker: KafkaBroker, topic: str, make: Callable[[dict[str, Any]], Any]
) -> None:
    """Every sending or transactional call raises in shadow; primary is untouched."""
    producer = make(kafka_broker.config(**{"transactional.id": f"tx-{topic}"}))
    with shadow() as scope:
        refused(lambda: producer.produce(topic, value=b"shadow"))
        refused(lambda: producer.produce(topic=topic, value=b"shadow-kw"))
        refused(lambda: producer.init_transactions(10))
        refused(lambda: producer.begin_transaction())
        refused(lambda: producer.purge())
        assert producer.flush(5) == 0
    assert [s.detail["operation"] for s in scope.suppressed] == [
        "produce",
        "produce",
        "init_transactions",
        "begin_transaction",
        "purge",
    ]
    assert {s.detail["action"] for s in scope.suppressed} == {"blocked"}
    assert scope.suppressed[0].kind == Kind.KAFKA_PRODUCE
    assert scope.suppressed[0].target == topic
    assert scope.suppressed[2].kind == Kind.KAFKA_TRANSACTION
    producer.init_transactions(10)
    producer.begin_transaction()
    producer.produce(topic, value=b"primary")
    producer.commit_transaction(10)
    assert kafka_broker.values(topic) == [b"primary"]


@pytest.mark.usefixtures("installed")
def test_produce_batch_refused_on_the_client_type(kafka_broker: KafkaBroker, topic: str) -> None:
    producer = CLIENT_TYPE(kafka_broker.config())
    with shadow():
        refused(lambda: producer.produce_batch(topic, [{"value": b"shadow"}]))
    assert producer.produce_batch(topic, [{"value": b"primary"}]) == 1
    producer.flush(10)
    assert kafka_broker.values(topic) == [b"primary"]


def test_producer_created_before_install_refuses(kafka_broker: KafkaBroker, topic: str) -> None:
    producer = confluent_kafka.Producer(kafka_broker.config())
    guard_module.install()
    try:
        with shadow():
            refused(lambda: producer.produce(topic, b"shadow"))
        guarded = guard_module.guard(producer)
        with shadow():
            guarded.produce(topic, b"shadow-guarded")
            guarded.flush(5)
        guarded.produce(topic, b"primary")
        guarded.flush(10)
    finally:
        guard_module.uninstall()
    assert kafka_broker.values(topic) == [b"primary"]


@pytest.mark.usefixtures("installed")
def test_cimpl_producer_after_install_is_guarded(kafka_broker: KafkaBroker, topic: str) -> None:
    """``confluent_kafka.cimpl.Producer`` looked up after install() builds a guarded one."""
    from confluent_kafka.cimpl import Producer

    assert Producer is guard_module.GuardedProducer
    assert isinstance(CLIENT_TYPE(kafka_broker.config()), cimpl.Producer)
    reports = DeliveryReports()
    producer = cimpl.Producer(kafka_broker.config())
    with shadow():
        producer.produce(topic, b"shadow", on_delivery=reports)
        producer.flush(5)
    producer.produce(topic, b"primary", on_delivery=reports)
    producer.flush(10)
    assert reports.values(shadow_only=True) == [b"shadow"]
    assert kafka_broker.values(topic) == [b"primary"]


@pytest.mark.usefixtures("installed")
def test_unguarded_flush_in_shadow_serves_primary_reports_as_primary(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    reports = DeliveryReports()
    producer = CLIENT_TYPE(kafka_broker.config())
    producer.produce(topic, b"primary", on_delivery=reports)
    with shadow():
        assert producer.flush(10) == 0
    assert reports.seen[0][0] is False
    assert reports.values() == [b"primary"]


def test_uninstall_restores_the_client_type(kafka_broker: KafkaBroker, topic: str) -> None:
    names = ("produce", "produce_batch", "purge", "init_transactions", "poll", "flush")
    before = {name: CLIENT_TYPE.__dict__[name] for name in names}
    guard_module.install()
    guard_module.uninstall()
    assert {name: CLIENT_TYPE.__dict__[name] for name in before} == before
    assert cimpl.Producer is CLIENT_TYPE
    producer = CLIENT_TYPE(kafka_broker.config())
    with shadow():  # not installed: nothing is guarded, as documented
        producer.produce(topic, b"uninstalled")
    producer.flush(10)
    assert kafka_broker.values(topic) == [b"uninstalled"]


@pytest.mark.asyncio
@pytest.mark.parametrize("serializing", [False, True], ids=["AIOProducer", "AsyncSerializing"])
@pytest.mark.usefixtures("installed")
async def test_asyncio_producer_class_taken_before_install_refuses(
    kafka_broker: KafkaBroker, topic: str, serializing: bool
) -> None:
    """Its batches leave from a worker thread: the class itself refuses in shadow."""
    if AIOProducer is None:
        pytest.skip("confluent-kafka before its asyncio producers")
    config = kafka_broker.config(**{"transactional.id": f"tx-{topic}"})
    if serializing and AsyncSerializingProducer is None:
        pytest.skip("confluent-kafka before AsyncSerializingProducer (2.16)")
    if serializing:
        producer: Any = await AsyncSerializingProducer(
            {**config, "value.serializer": _utf8}, buffer_timeout=0
        )
    else:
        producer = AIOProducer(config, buffer_timeout=0)
    try:
        with shadow():
            with pytest.raises(ShadowSideEffectBlocked):
                await producer.produce(topic, value=b"shadow")
            with pytest.raises(ShadowSideEffectBlocked):
                await producer.init_transactions(10)
            with pytest.raises(ShadowSideEffectBlocked):
                await producer.purge()
            await producer.flush()
        await producer.init_transactions(10)
        await producer.begin_transaction()
        delivered = await producer.produce(topic, value=b"primary")
        await producer.commit_transaction(10)
        await delivered
    finally:
        await producer.close()
    assert not is_shadow()
    assert kafka_broker.values(topic) == [b"primary"]
