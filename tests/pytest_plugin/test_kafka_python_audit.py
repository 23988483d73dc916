"""``--shadowguard-audit`` on a suite that sends with kafka-python: counted per test, nothing stored."""

from __future__ import annotations

import pytest

from tests.peers.kafka import KafkaBroker
from tests.pytest_plugin._audit import guards_conftest, run_audit

pytest_plugins = ["pytester"]

TESTS = """
import os

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaProducer


def test_places_an_order():
    producer = KafkaProducer(bootstrap_servers=os.environ["SG_KAFKA"])
    assert producer.send(os.environ["SG_TOPIC"], b"order", key=b"k1").get(10).offset == -1
    producer.send(os.environ["SG_TOPIC"], b"audit")
    producer.close(timeout=5)


@pytest.mark.asyncio
async def test_places_an_order_async():
    producer = AIOKafkaProducer(bootstrap_servers=os.environ["SG_KAFKA"])
    await producer.start()
    try:
        await producer.send_and_wait(os.environ["SG_TOPIC"], b"async order")
    finally:
        await producer.stop()
"""


def test_audit_counts_kafka_suppressions_and_the_broker_keeps_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, kafka_broker: KafkaBroker
) -> None:
    topic = kafka_broker.create_topic()
    monkeypatch.setenv("SG_KAFKA", kafka_broker.bootstrap)
    monkeypatch.setenv("SG_TOPIC", topic)
    run_audit(
        pytester,
        TESTS,
        guards_conftest("kafka_python", "aiokafka"),
        ini="asyncio_mode = strict\n",
        allow_hosts=kafka_broker.bootstrap,
        suppressed={
            "test_places_an_order": "kafka.produce=2",
            "test_places_an_order_async": "kafka.produce=1",
        },
    )
    assert kafka_broker.values(topic) == []
