"""``--shadowguard-audit`` on a suite that sends with kafka-python: counted per test, nothing stored."""

from __future__ import annotations

import pytest

from tests.peers.kafka import KafkaBroker

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest
import shadowguard


@pytest.fixture(scope="session", autouse=True)
def guards():
    shadowguard.install("kafka_python", "aiokafka")
    yield
    shadowguard.uninstall("kafka_python", "aiokafka")
"""

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
    pytester.makeconftest(CONFTEST)
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
        f"shadowguard_allow_hosts = {kafka_broker.bootstrap}\n"
    )
    pytester.makepyfile(test_inner=TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--shadowguard-audit", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "2 test(s) ran as shadow traffic, 0 leaked (audit: *)",
            "suppressed by guards in test_inner.py::test_places_an_order: kafka.produce=2",
            "suppressed by guards in test_inner.py::test_places_an_order_async: kafka.produce=1",
        ]
    )
    assert kafka_broker.values(topic) == []
