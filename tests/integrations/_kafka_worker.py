"""A consume-transform-produce worker as an application deploys it, with kafka-python or aiokafka.

``python -m tests.integrations._kafka_worker CLIENT BOOTSTRAP TOPIC OUT GROUP COUNT``, run by
the tests with ``SHADOW_MODE=true`` or ``false``: installs shadowguard, joins ``GROUP`` (as
configured: the guard decides the group) with auto-commit on, reads ``COUNT`` messages, sends
each upper-cased to ``OUT``, commits, closes, and writes what it saw as JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import shadowguard

GROUP_SETTINGS: dict[str, Any] = {
    "auto_offset_reset": "earliest",
    "enable_auto_commit": True,
    "auto_commit_interval_ms": 200,
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 500,
}


def kafka_python(bootstrap: str, topic: str, out: str, group: str, count: int) -> dict[str, Any]:
    shadowguard.install("kafka_python")
    from kafka import KafkaConsumer, KafkaProducer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, **GROUP_SETTINGS)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    read: list[str] = []
    offsets: list[int] = []
    deadline = time.monotonic() + 40
    while len(read) < count and time.monotonic() < deadline:
        for records in consumer.poll(200).values():
            for record in records:
                read.append(record.value.decode())
                offsets.append(producer.send(out, record.value.upper()).get(10).offset)
    producer.flush(10)
    consumer.commit()
    group_id = consumer.config["group_id"]
    consumer.close()
    producer.close(timeout=5)
    return {"group": group_id, "read": read, "offsets": offsets}


async def aiokafka(bootstrap: str, topic: str, out: str, group: str, count: int) -> dict[str, Any]:
    shadowguard.install("aiokafka")
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, **GROUP_SETTINGS
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    read: list[str] = []
    offsets: list[int] = []
    deadline = time.monotonic() + 40
    while len(read) < count and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            for record in records:
                read.append(record.value.decode())
                sent = await producer.send_and_wait(out, record.value.upper())
                offsets.append(sent.offset)
    await consumer.commit()
    group_id = consumer._group_id
    await consumer.stop()
    await producer.stop()
    return {"group": group_id, "read": read, "offsets": offsets}


if __name__ == "__main__":
    client, bootstrap, topic, out, group, count = sys.argv[1:7]
    if client == "aiokafka":
        seen = asyncio.run(aiokafka(bootstrap, topic, out, group, int(count)))
    else:
        seen = kafka_python(bootstrap, topic, out, group, int(count))
    sys.stdout.write(json.dumps(seen) + "\n")
