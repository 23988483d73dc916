"""confluent-kafka guard, produce and delivery: shadow messages never reach the broker, primary ones all do.

The oracle is the Tansu broker of the session (tests/peers/kafka.py): a consumer reads
the topic from the beginning after the producer flushed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import KafkaError

from shadowguard import is_shadow, shadow
from shadowguard.integrations import confluent_kafka as guard_module
from tests.peers.kafka import DeliveryReports, KafkaBroker, produce_orders

SINK = "confluent_kafka"


@pytest.fixture
def topic(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.create_topic()


@pytest.mark.usefixtures("installed")
def test_shadow_produce_reaches_no_broker_and_primary_does(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    """Shadow: callbacks once per message, as shadow, nothing stored. Primary: all stored."""
    producer = confluent_kafka.Producer(kafka_broker.config())
    assert isinstance(producer, confluent_kafka.cimpl.Producer)
    reports = DeliveryReports()
    with shadow("test") as scope:
        produce_orders(producer, topic, "shadow", reports)
        assert len(producer) == 0
    assert [(s, e) for s, e, _ in reports.seen] == [(True, None)] * 3
    message = reports.seen[0][2]
    assert isinstance(message, confluent_kafka.Message)
    assert (message.topic(), message.key(), message.value()) == (topic, b"k0", b"shadow-0")
    assert message.timestamp()[0] == confluent_kafka.TIMESTAMP_CREATE_TIME
    assert scope.counts["kafka.produce"] == 3
    assert scope.suppressed[0].target == topic
    assert scope.suppressed[0].detail["headers_bytes"] == len(b"source") + len(b"test") + 2

    produce_orders(producer, topic, "primary", reports)
    assert reports.values(shadow_only=False) == [b"primary-0", b"primary-1", b"primary-2"]
    assert kafka_broker.values(topic) == [b"primary-0", b"primary-1", b"primary-2"]


@pytest.mark.usefixtures("installed")
def test_callbacks_wait_for_poll_and_len_counts_only_real_messages(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    producer = confluent_kafka.Producer(kafka_broker.config(**{"linger.ms": 1000}))
    reports = DeliveryReports()
    producer.produce(topic, b"primary", on_delivery=reports)
    with shadow():
        producer.produce(topic, b"shadow", on_delivery=reports)
        assert reports.seen == []
        assert len(producer) == 1
    assert producer.poll(0) == 0  # the shadow report is served, not counted for a primary
    assert reports.values(shadow_only=True) == [b"shadow"]
    assert producer.flush(10) == 0
    assert sorted(reports.values()) == [b"primary", b"shadow"]


@pytest.mark.usefixtures("installed")
def test_primary_callbacks_served_from_a_shadow_poll_run_as_primary(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    producer = confluent_kafka.Producer(kafka_broker.config())
    reports = DeliveryReports()
    producer.produce(topic, b"primary", on_delivery=reports)
    with shadow():
        producer.produce(topic, b"shadow", on_delivery=reports)
        assert producer.flush(10) == 0
    assert sorted((v, s) for s, _, m in reports.seen for v in [m.value()]) == [
        (b"primary", False),
        (b"shadow", True),
    ]
    assert kafka_broker.values(topic) == [b"primary"]


def _failing(error: KafkaError | None, message: Any) -> None:
    raise RuntimeError("shadow callback failed")


@pytest.mark.parametrize("how", ["install", "guard"])
def test_primary_poll_and_flush_are_not_changed_by_shadow_reports(
    kafka_broker: KafkaBroker, topic: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A primary poll() keeps its timeout and count; a failing shadow callback is logged."""
    if how == "install":
        guard_module.install()
        producer = confluent_kafka.Producer(kafka_broker.config())
    else:
        producer = guard_module.guard(confluent_kafka.Producer(kafka_broker.config()))
    try:
        reports = DeliveryReports()
        with shadow():
            producer.produce(topic, b"shadow-1", on_delivery=reports)
        started = time.monotonic()
        assert producer.poll(0.3) == 0
        assert time.monotonic() - started >= 0.25
        assert reports.values(shadow_only=True) == [b"shadow-1"]

        with shadow():
            producer.produce(topic, b"shadow-2", on_delivery=_failing)
        with caplog.at_level(logging.ERROR, logger="shadowguard"):
            assert producer.poll(0) == 0
        assert "shadow delivery callback failed" in caplog.text
        assert "shadow callback failed" in caplog.text

        with shadow():
            producer.produce(topic, b"shadow-3", on_delivery=_failing)
        producer.produce(topic, b"primary", on_delivery=reports)
        assert producer.flush(10) == 0
        assert reports.values(shadow_only=False) == [b"primary"]

        with shadow():  # shadow code polling sees its own callback's error, as unguarded
            producer.produce(topic, b"shadow-4", on_delivery=_failing)
            with pytest.raises(RuntimeError, match="shadow callback failed"):
                producer.poll(0)
    finally:
        guard_module.uninstall()
    assert kafka_broker.values(topic) == [b"primary"]


@pytest.mark.usefixtures("installed")
def test_serializing_producer_runs_serializers_in_shadow(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    calls: list[tuple[str, Any, Any, bool]] = []

    def to_json(obj: Any, ctx: Any) -> bytes:
        calls.append((ctx.topic, ctx.field, ctx.headers, is_shadow()))
        return json.dumps(obj, sort_keys=True).encode()

    producer = confluent_kafka.SerializingProducer(
        kafka_broker.config(**{"key.serializer": to_json, "value.serializer": to_json})
    )
    reports = DeliveryReports()

    def place(order: int) -> None:
        producer.produce(
            topic,
            key={"id": order},
            value={"order": order},
            headers=[("v", b"1")],
            on_delivery=reports,
        )
        producer.flush(10)

    with shadow():
        place(1)
        with pytest.raises(confluent_kafka.error.ValueSerializationError):
            producer.produce(topic, value=object())
    assert calls[:2] == [
        (topic, "key", [("v", b"1")], True),
        (topic, "value", [("v", b"1")], True),
    ]
    assert [(s, m.key(), m.value()) for s, _, m in reports.seen] == [
        (True, b'{"id": 1}', b'{"order": 1}')
    ]
    place(2)
    assert kafka_broker.values(topic) == [b'{"order": 2}']


@pytest.mark.usefixtures("installed")
def test_produce_batch(kafka_broker: KafkaBroker, topic: str) -> None:
    producer = confluent_kafka.Producer(kafka_broker.config())
    batch_reports, own_reports = DeliveryReports(), DeliveryReports()

    def send(tag: str) -> int:
        messages: list[dict[str, Any]] = [
            {"value": f"{tag}-a".encode()},
            {"value": f"{tag}-b", "key": "k", "callback": own_reports},
            {"value": b"x" * 2_000_000},
        ]
        queued = producer.produce_batch(topic, messages, on_delivery=batch_reports)
        assert messages[2]["_error"].code() == KafkaError.MSG_SIZE_TOO_LARGE
        assert "_error" not in messages[0]
        producer.flush(10)
        return queued

    with shadow():
        assert send("shadow") == 2
    assert batch_reports.values(shadow_only=True) == [b"shadow-a"]
    assert own_reports.values(shadow_only=True) == [b"shadow-b"]
    assert send("primary") == 2
    assert batch_reports.values(shadow_only=False) == [b"primary-a"]
    assert kafka_broker.values(topic) == [b"primary-a", b"primary-b"]


@pytest.mark.usefixtures("installed")
def test_purge_in_shadow_keeps_primary_messages(kafka_broker: KafkaBroker, topic: str) -> None:
    producer = confluent_kafka.Producer(kafka_broker.config(**{"linger.ms": 500}))
    reports = DeliveryReports()
    producer.produce(topic, b"primary", on_delivery=reports)
    with shadow():
        producer.produce(topic, b"shadow", on_delivery=reports)
        producer.purge()
    producer.flush(10)
    errors = {m.value(): e for _, e, m in reports.seen}
    assert errors[b"primary"] is None
    purged = errors[b"shadow"]
    assert purged is not None
    assert purged.code() == KafkaError._PURGE_QUEUE
    assert kafka_broker.values(topic) == [b"primary"]


@pytest.mark.usefixtures("installed")
def test_bad_topic_fails_delivery_alike(kafka_broker: KafkaBroker) -> None:
    reports = DeliveryReports()
    for name in ["bad topic!", "..", "x" * 250]:
        # A fresh producer each time: once a producer has learnt that a topic is bad, the
        # client may raise _UNKNOWN_TOPIC at produce() (not modelled in shadow: see docs).
        producer = confluent_kafka.Producer(kafka_broker.config())
        producer.produce(name, b"x", on_delivery=reports)
        producer.flush(10)
        with shadow():
            producer.produce(name, b"x", on_delivery=reports)
            producer.flush(10)
    codes = [(s, e.code() if e else None) for s, e, _ in reports.seen]
    assert codes == [(False, KafkaError.TOPIC_EXCEPTION), (True, KafkaError.TOPIC_EXCEPTION)] * 3


@pytest.mark.usefixtures("installed")
def test_shared_producer_across_threads_and_tasks(kafka_broker: KafkaBroker, topic: str) -> None:
    """Interleaved shadow and primary produces: every primary once, no shadow stored."""
    producer = confluent_kafka.Producer(kafka_broker.config())
    reports = DeliveryReports()
    start = threading.Barrier(5)

    def send(value: bytes) -> None:
        tag = b"shadow-" if is_shadow() else b"primary-"
        producer.produce(topic, tag + value, on_delivery=reports)

    def thread_worker(n: int) -> None:
        start.wait()
        for i in range(25):
            if (n + i) % 2:
                with shadow():
                    send(f"{n}-{i}".encode())
                    producer.poll(0)
            else:
                send(f"{n}-{i}".encode())
                producer.poll(0)

    async def task(i: int) -> None:
        if i % 2:
            async with shadow():
                await asyncio.sleep(0)
                send(f"4-{i}".encode())
                await asyncio.sleep(0)
                producer.poll(0)
        else:
            await asyncio.sleep(0)
            send(f"4-{i}".encode())
            producer.poll(0)

    async def tasks() -> None:
        start.wait()
        await asyncio.gather(*(task(i) for i in range(25)))

    threads = [threading.Thread(target=thread_worker, args=(n,)) for n in range(4)]
    threads.append(threading.Thread(target=asyncio.run, args=(tasks(),)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert producer.flush(10) == 0
    sent = [(f"{n}-{i}", (n + i) % 2 == 1) for n in range(5) for i in range(25)]
    primaries = sorted(f"primary-{v}".encode() for v, as_shadow in sent if not as_shadow)
    shadows = sorted(f"shadow-{v}".encode() for v, as_shadow in sent if as_shadow)
    assert sorted(reports.values(shadow_only=False)) == primaries
    assert sorted(reports.values(shadow_only=True)) == shadows
    assert sorted(v for v in kafka_broker.values(topic) if v is not None) == primaries


@pytest.mark.usefixtures("installed")
def test_configured_delivery_callback_and_only_errors(kafka_broker: KafkaBroker) -> None:
    reports, errors_only = DeliveryReports(), DeliveryReports()
    producer = confluent_kafka.Producer(kafka_broker.config(on_delivery=reports))
    quiet = confluent_kafka.Producer(
        kafka_broker.config(**{"on_delivery": errors_only, "delivery.report.only.error": True})
    )
    with shadow():
        producer.produce("orders", b"1")
        quiet.produce("orders", b"2")
        quiet.produce("bad topic", b"3")
        producer.flush(10)
        quiet.flush(10)
    assert reports.values(shadow_only=True) == [b"1"]
    assert [(m.value(), e is not None) for _, e, m in errors_only.seen] == [(b"3", True)]


@pytest.mark.usefixtures("installed", "span_exporter")
def test_span_is_tagged(kafka_broker: KafkaBroker, span_exporter: Any) -> None:
    from opentelemetry import trace

    producer = confluent_kafka.Producer(kafka_broker.config())
    with trace.get_tracer("test").start_as_current_span("request"), shadow():
        producer.produce("orders", b"1")
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["messaging.publish_suppressed"] is True
    assert span.events[0].attributes["target"] == "orders"
