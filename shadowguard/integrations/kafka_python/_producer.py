"""``KafkaProducer.send`` in shadow: checked and serialized as the client does, never queued.

The hook replaces ``send`` on the class, so producers created before ``install()`` (and
subclasses that call ``super().send``) are covered. In shadow it runs the client's own
checks in the client's order, with the producer's own helpers where they are pure:
closed producer, key or value, header types, the key and value serializers, the
serialized types, the topic name, the partition (against the metadata the producer
already holds; the shadow never asks the broker, whose metadata request may auto-create
a topic) and ``max_request_size``. What the client would raise, it raises; otherwise it
returns a :class:`~kafka.producer.future.FutureRecordMetadata` that is already resolved,
with ``offset=-1`` as for ``acks=0`` (the broker stored nothing), so ``get()``,
``add_callback()`` and ``add_errback()`` behave as for a delivered record.

kafka-python 2 and 3 differ in what ``send`` raises (2 asserts, 3 raises typed errors; 2
returns a record too large as a failed future, 3 raises it) and in the serializer call
(3 passes the headers): the shadow follows the installed version.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from kafka.errors import BrokerResponseError, IllegalStateError
from kafka.producer.future import FutureProduceResult, FutureRecordMetadata, RecordMetadata
from kafka.producer.kafka import KafkaProducer
from kafka.structs import TopicPartition
from kafka.util import ensure_valid_topic_name

from shadowguard._kafka_clients import key_text, produce_detail
from shadowguard.contract import PROCESS, Kind, mark_wrapped, record, scope_now

__all__ = ["key_text", "send_hook"]

_SERIALIZED = (bytes, bytearray, memoryview, type(None))
#: kafka-python 3 passes the headers to serializers (``serialize(topic, headers, data)``),
#: and raises typed errors where 2 asserts.
_KAFKA_PYTHON_3 = "headers" in inspect.signature(KafkaProducer._serialize).parameters


def send_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """``KafkaProducer.send``: the client's own for a primary caller, :func:`shadow_send` in shadow.

    The client's six parameters are spelled out: passing ``*args``/``**kwargs`` on would
    re-pack every primary call.
    """

    def send(
        self: Any,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, topic, value, key, headers, partition, timestamp_ms)
        return shadow_send(self, topic, value, key, headers, partition, timestamp_ms)

    mark_wrapped(send, original)
    return send


def shadow_send(
    producer: Any,
    topic: Any,
    value: Any,
    key: Any,
    headers: Any,
    partition: Any,
    timestamp_ms: Any,
) -> FutureRecordMetadata:
    """What ``send`` returns in shadow, or what it raises; the attempt is recorded either way."""
    try:
        key_bytes, value_bytes, headers, partition = _checked(
            producer, topic, value, key, headers, partition
        )
    except Exception as exc:
        record(Kind.KAFKA_PRODUCE, topic if isinstance(topic, str) else "?", "send", error=exc)
        if not _KAFKA_PYTHON_3 and isinstance(exc, BrokerResponseError):
            # kafka-python 2 returns these (a record too large) as a failed future.
            failed = TopicPartition(topic, partition)
            return FutureRecordMetadata(
                FutureProduceResult(failed), -1, None, None, -1, -1, -1
            ).failure(exc)
        raise
    stamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    header_size = sum(len(k.encode("utf-8")) + len(v) for k, v in headers) if headers else -1
    tp = TopicPartition(topic, partition)
    sizes = (_size(key_bytes), _size(value_bytes), header_size)
    # The produce future stays pending (nothing was produced); the record's own future is
    # settled, which is all get() and the callbacks look at.
    future = FutureRecordMetadata(FutureProduceResult(tp), None, stamp, None, *sizes)
    record(Kind.KAFKA_PRODUCE, topic, "send", produce_detail(partition, key_bytes, value_bytes))
    # offset -1: "not assigned by the broker", as with acks=0. By field name: the tuple's
    # fields differ between kafka-python versions.
    values: dict[str, Any] = {
        "topic": topic,
        "partition": partition,
        "topic_partition": tp,
        "offset": -1,
        "timestamp": stamp,
        "serialized_key_size": sizes[0],
        "serialized_value_size": sizes[1],
        "serialized_header_size": sizes[2],
    }
    future.success(RecordMetadata(**{f: values.get(f) for f in RecordMetadata._fields}))
    return future


def _checked(
    producer: Any, topic: Any, value: Any, key: Any, headers: Any, partition: Any
) -> tuple[Any, Any, list[tuple[str, bytes]], int]:
    """The client's checks in its order (kafka-python 3: headers, then serializers, topic,
    partition; 2: topic, serializers, partition, then headers), then the size."""
    if _KAFKA_PYTHON_3:
        key_bytes, value_bytes, headers = _serialized(producer, topic, value, key, headers)
        # The client checks the name when it asks the broker for the topic's metadata.
        ensure_valid_topic_name(topic)
        partition = _partition(producer, topic, partition, key, value, key_bytes, value_bytes)
    else:
        key_bytes, value_bytes = _serialized_2(producer, topic, value, key)
        partition = _partition(producer, topic, partition, key, value, key_bytes, value_bytes)
        headers = [] if headers is None else headers
        assert isinstance(headers, list)
        assert _valid_headers(headers)
    size = producer._estimate_size_in_bytes(key_bytes, value_bytes, headers)
    producer._ensure_valid_record_size(size)
    return key_bytes, value_bytes, headers, partition


def _serialized(producer: Any, topic: Any, value: Any, key: Any, headers: Any) -> Any:
    """kafka-python 3: typed errors, headers checked first, then given to the serializers."""
    if producer._closed:
        raise IllegalStateError("KafkaProducer already closed!")
    if value is None and key is None:
        raise ValueError("Need at least one: key or value")
    if headers is None:
        headers = []
    if not isinstance(headers, list):
        raise TypeError("headers must be list-type")
    if not _valid_headers(headers):
        raise TypeError("All headers items must be (str, bytes) tuples")
    config = producer.config
    key_bytes = producer._serialize(config["key_serializer"], topic, headers, key)
    value_bytes = producer._serialize(config["value_serializer"], topic, headers, value)
    if type(key_bytes) not in _SERIALIZED:
        raise TypeError(f"Unsupported type for serialized key: {type(key_bytes)}")
    if type(value_bytes) not in _SERIALIZED:
        raise TypeError(f"Unsupported type for serialized value: {type(value_bytes)}")
    return key_bytes, value_bytes, headers


def _serialized_2(producer: Any, topic: Any, value: Any, key: Any) -> tuple[Any, Any]:
    """kafka-python 2: ``AssertionError`` for each check, the topic name first."""
    assert not producer._closed, "KafkaProducer already closed!"
    assert not (value is None and key is None), "Need at least one: key or value"
    ensure_valid_topic_name(topic)
    config = producer.config
    key_bytes = producer._serialize(config["key_serializer"], topic, key)
    value_bytes = producer._serialize(config["value_serializer"], topic, value)
    assert type(key_bytes) in _SERIALIZED, f"Unsupported type for serialized key: {type(key_bytes)}"
    assert type(value_bytes) in _SERIALIZED, (
        f"Unsupported type for serialized value: {type(value_bytes)}"
    )
    return key_bytes, value_bytes


def _valid_headers(headers: list[Any]) -> bool:
    return all(
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], bytes)
        for item in headers
    )


def _partition(
    producer: Any,
    topic: str,
    partition: Any,
    key: Any,
    value: Any,
    key_bytes: Any,
    value_bytes: Any,
) -> int:
    """The partitioner's choice if the producer knows the topic; else the one asked for, or 0."""
    metadata = producer._metadata
    if metadata.partitions_for_topic(topic) and metadata.available_partitions_for_topic(topic):
        chosen = producer._partition(topic, partition, key, value, key_bytes, value_bytes)
        if chosen is None:
            raise ValueError(f"Partitioner did not assign a partition for topic {topic}!")
        return int(chosen)
    if partition is None:
        return 0
    if not _KAFKA_PYTHON_3:
        assert partition >= 0
    elif partition < 0:
        raise ValueError("partition must be >= 0")
    return int(partition)


def _size(data: Any) -> int:
    return len(data) if data is not None else -1
