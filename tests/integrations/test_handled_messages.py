"""A primary and a shadow Kafka consumer record the messages they handle; compare pairs them.

Both read one topic on the Tansu broker: the primary in its group, the shadow in a consumer
created in a shadow scope (so in ``<group>-shadow``). Each handles every message inside
``shadowguard.capture.handled`` under the message's position, the shadow with a seeded
change on one message in ten and an error on one. ``shadowguard compare`` pairs every
message, finds the change at its field and the error as a status change, and the primary's
group has committed exactly what the primary committed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest

from shadowguard import capture, is_shadow, shadow
from shadowguard.capture import handled
from shadowguard.compare import Options, compare
from tests.integrations._consumers import consumer_config, group, read
from tests.peers.kafka import KafkaBroker

__all__ = ["group"]  # fixture

SINK = "confluent_kafka"
MESSAGES = 40


def message_id(message: Any) -> str:
    return f"{message.topic()}/{message.partition()}/{message.offset()}"


def handle(message: Any) -> dict[str, Any]:
    """The worker's handler; the shadow runs the rewrite, with two seeded differences."""
    n = json.loads(message.value())["n"]
    if is_shadow() and n == 7:
        raise ValueError("the rewrite cannot price order 7")
    total = 10 * n + (1 if is_shadow() and n % 10 == 0 else 0)
    return {"n": n, "total": total}


def handle_all(consumer: Any, topic: str, url: str) -> None:
    for message in read(consumer, topic, MESSAGES):
        try:
            with handled(topic, message_id(message), capture=url) as record:
                record.result = handle(message)
        except ValueError:
            assert is_shadow()
    consumer.commit(asynchronous=False)


@pytest.mark.usefixtures("installed")
def test_primary_and_shadow_consumers_are_compared_by_message(
    kafka_broker: KafkaBroker, group: str, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic()
    producer = confluent_kafka.Producer(kafka_broker.config())
    for n in range(MESSAGES):
        producer.produce(topic, json.dumps({"n": n}).encode())
    assert producer.flush(10) == 0
    url = f"sqlite://{tmp_path / 'capture.db'}"

    primary = confluent_kafka.Consumer(consumer_config(kafka_broker, group))
    try:
        handle_all(primary, topic, url)
    finally:
        primary.close()
    with shadow():
        consumer = confluent_kafka.Consumer(consumer_config(kafka_broker, group))
        try:
            handle_all(consumer, topic, url)
        finally:
            consumer.close()

    assert kafka_broker.committed(group, topic) == {0: MESSAGES}
    assert kafka_broker.committed(f"{group}-shadow", topic) == {0: MESSAGES}
    assert capture.flush(timeout=30)
    report = compare([url], Options(examples=MESSAGES)).report
    assert report["labels"]["baseline"] == "primary"
    assert report["labels"]["candidate"] == "shadow"
    assert report["pairs"] == MESSAGES
    assert report["unpaired"] == {"baseline": 0, "candidate": 0}
    [route] = report["routes"]
    assert (route["method"], route["route"]) == ("CONSUME", topic)
    found = {d["path"]: set(d["examples"]) for d in route["diffs"]}
    failed = {f"{topic}/0/7"}  # no outcome on the shadow side: its body and header are gone
    assert found == {
        "total": {f"{topic}/0/{n}" for n in (0, 10, 20, 30)},
        "$": failed,
        "header:content-type": failed,
    }
    assert route["status_mismatches"] == 1
    assert route["exceptions"]["shadow"] == {"ValueError": 1}


def test_capture_off_records_nothing_and_never_hides_an_error(tmp_path: Path) -> None:
    with handled("orders", "orders/0/1", capture=False) as record:
        record.result = {"n": 1}
    with pytest.raises(KeyError), handled("orders", "orders/0/2", capture=False):
        raise KeyError("handler failed")


def test_a_record_that_cannot_be_made_never_reaches_the_handler(tmp_path: Path) -> None:
    class Broken:
        """A sink whose writes fail: capture drops, the handler never sees it."""

        def write(self, records: Any) -> None:
            raise OSError("disk full")

        def close(self) -> None:
            pass

    with handled("orders", "orders/0/3", capture=Broken()) as record:
        record.result = object()  # not JSON: kept as text
    assert record.message_id == "orders/0/3"
