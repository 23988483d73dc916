"""A consumer worker as an application deploys it, run with ``SHADOW_MODE=true`` by the tests.

``python -m tests.integrations._shadow_worker BOOTSTRAP TOPIC GROUP COUNT [tx|static]...``:
installs shadowguard, joins ``GROUP`` (as configured: the guard decides the group; as the
static member ``worker-1`` with ``static``, which Tansu takes about 6 s to let in), reads until
``COUNT`` messages arrived (or 2 s passed with partitions and no message), storing each
offset for auto-commit; with ``tx`` runs a consume-transform-produce transaction with
the primary's ``transactional.id``; then prints what it saw as JSON on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import shadowguard

CONSUMER_SETTINGS = {
    "session.timeout.ms": 2000,
    "heartbeat.interval.ms": 400,
    "auto.offset.reset": "earliest",
}


def main(bootstrap: str, topic: str, group: str, count: int, flags: list[str]) -> None:
    shadowguard.install("confluent_kafka")
    from confluent_kafka import Consumer, Producer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            **({"group.instance.id": "worker-1"} if "static" in flags else {}),
            "enable.auto.offset.store": False,
            "auto.commit.interval.ms": 200,
            **CONSUMER_SETTINGS,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{group}-tx"})
    consumer.subscribe([topic])
    seen: list[str] = []
    deadline = time.monotonic() + 20
    last: float | None = None  # when the last message (or the first assignment) came
    while len(seen) < count and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if not consumer.assignment():
            continue
        if message is not None and message.error() is None:
            seen.append(bytes(message.value() or b"").decode())
            consumer.store_offsets(message)
            last = time.monotonic()
        elif last is None:
            last = time.monotonic()
        elif time.monotonic() - last > 2:
            break
    assignment = sorted(tp.partition for tp in consumer.assignment())
    with shadowguard.shadow() as scope:  # the whole process is shadow: a scope to count
        if "tx" in flags:
            produce_transaction(producer, consumer, topic)
    consumer.close()  # commits the stored offsets, in the shadow's group
    sys.stdout.write(
        json.dumps(
            {
                "seen": sorted(seen),
                "assignment": assignment,
                "shadow": shadowguard.is_shadow(),
                "suppressed": [(s.kind, s.detail["operation"]) for s in scope.suppressed],
            }
        )
        + "\n"
    )


def produce_transaction(producer: Any, consumer: Any, topic: str) -> None:
    """Consume-transform-produce: the derived message and the consumer's offsets, atomically."""
    producer.init_transactions(10)
    producer.begin_transaction()
    producer.produce(topic, b"derived")
    producer.send_offsets_to_transaction(
        consumer.position(consumer.assignment()), consumer.consumer_group_metadata()
    )
    producer.commit_transaction(10)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
