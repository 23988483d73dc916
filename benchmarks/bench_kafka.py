"""Primary-path cost of the confluent-kafka guard, and the cost of a suppressed produce.

The producers point at a closed loopback port (no broker, no background traffic), so
the timed loop only enqueues into librdkafka's local queue. Both sides share one call
wrapper that purges the queue every few thousand messages, to keep memory flat. The
primary produce() is a CPU-bound call of a few hundred nanoseconds: it is compared by each
side's fastest samples (the harness's ``fastest``), its median difference printed beside.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Harness
from shadowguard import shadow

TOPIC = "bench"
VALUE = b'{"order": 1234, "status": "placed"}'
ORDER = {"order": 1234, "status": "placed"}
PURGE_EVERY = 2_000


def _config() -> dict[str, Any]:
    return {
        "bootstrap.servers": "127.0.0.1:9",
        "reconnect.backoff.ms": 10_000,
        "reconnect.backoff.max.ms": 10_000,
        "queue.buffering.max.messages": 1_000_000,
        "linger.ms": 1000,
        "log_level": 0,
    }


def _enqueuer(producer: Any, produce: Callable[[], object]) -> Callable[[], None]:
    count = [0]

    def call() -> None:
        produce()
        count[0] += 1
        if count[0] >= PURGE_EVERY:
            count[0] = 0
            producer.purge()
            producer.poll(0)

    return call


def _to_json(obj: Any, ctx: Any) -> bytes:
    return json.dumps(obj).encode()


def run(h: Harness) -> None:
    if not h.imports(
        "confluent_kafka",
        missing="confluent-kafka is not installed: pip install 'shadowguard[kafka]'",
    ):
        return
    import confluent_kafka

    from shadowguard.integrations import confluent_kafka as guard

    raw = confluent_kafka.cimpl.Producer(_config())
    guarded = guard.GuardedProducer(_config())
    raw_produce = _enqueuer(raw, lambda: raw.produce(TOPIC, VALUE))
    guarded_produce = _enqueuer(guarded, lambda: guarded.produce(TOPIC, VALUE))
    h.compare(
        "Producer.produce() primary, guarded vs raw",
        raw_produce,
        guarded_produce,
        target_added_ns=250,
        fastest=True,  # a CPU-bound enqueue: compare each side's undisturbed samples
    )
    h.compare(
        "Producer.poll(0) primary, guarded vs raw", lambda: raw.poll(0), lambda: guarded.poll(0)
    )

    # Consumers: install() guards the client's type itself; the baseline calls the client's
    # own method, taken before install() (no subscription: poll(0) only serves callbacks).
    consumer = confluent_kafka.cimpl.Consumer(
        {"bootstrap.servers": "127.0.0.1:9", "group.id": "bench", "log_level": 0}
    )
    raw_poll = confluent_kafka.cimpl.Consumer.poll
    guard.install()
    h.compare(
        "Consumer.poll(0) primary, guarded vs raw",
        lambda: raw_poll(consumer, 0),
        lambda: consumer.poll(0),
        target_added_ns=250,
    )
    guard.uninstall()
    consumer.close()

    serializing = {"value.serializer": _to_json, **_config()}
    raw_sp = confluent_kafka.serializing_producer.SerializingProducer(serializing)
    guarded_sp = guard.GuardedSerializingProducer(serializing)
    h.compare(
        "SerializingProducer.produce() JSON primary, guarded vs raw",
        _enqueuer(raw_sp, lambda: raw_sp.produce(TOPIC, value=ORDER)),
        _enqueuer(guarded_sp, lambda: guarded_sp.produce(TOPIC, value=ORDER)),
        target_ratio=1.10,
    )

    with shadow("bench"):
        h.compare(
            "Producer.produce() shadow (suppressed) vs raw primary",
            raw_produce,
            guarded_produce,
        )
    for producer in (raw, guarded, raw_sp, guarded_sp):
        producer.purge()
        producer.flush(1)
