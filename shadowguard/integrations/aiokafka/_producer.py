"""``AIOKafkaProducer.send`` and ``send_batch`` in shadow: checked as the client does, never queued.

The hooks replace the methods on the class, so producers created before ``install()``
are covered, and ``send_and_wait`` (which awaits ``self.send``) follows. In shadow,
``send`` runs the client's checks with the producer's own pure helpers: key or value
present, the serializers and ``max_request_size`` (``_serialize``), and the partition
against the metadata the producer already holds (the shadow never asks the broker, whose
metadata request may auto-create a topic). It returns an ``asyncio.Future`` already
resolved to a ``RecordMetadata`` with ``offset=-1`` (the broker stored nothing).
``send_batch`` does the same for a whole ``BatchBuilder``, which is left unsent.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiokafka.producer.producer import AIOKafkaProducer
from aiokafka.structs import RecordMetadata, TopicPartition

from shadowguard._kafka_clients import produce_detail
from shadowguard.contract import PROCESS, Kind, mark_wrapped, record, scope_now

__all__ = ["coroutine_function", "send_batch_hook", "send_hook"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: ``RecordMetadata.timestamp_type``: the producer's timestamp (CreateTime).
_CREATE_TIME = 0
#: aiokafka 0.13 counts the headers in the size check (``_serialize(key, value, headers)``);
#: before, ``_serialize(topic, key, value)``.
_SERIALIZE_TAKES_HEADERS = "headers" in inspect.signature(AIOKafkaProducer._serialize).parameters


def send_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """``AIOKafkaProducer.send``: the client's own for a primary caller, checked only in shadow.

    A plain function returning the coroutine to await: the primary path gets the client's own
    coroutine, with no frame of ours around it.
    """

    def send(
        self: Any,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Coroutine[Any, Any, Any]:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, topic, value, key, partition, timestamp_ms, headers)  # type: ignore[no-any-return]
        return _later(shadow_send, self, topic, value, key, partition, timestamp_ms, headers)

    mark_wrapped(send, original)
    return coroutine_function(send)


def send_batch_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """``AIOKafkaProducer.send_batch``: the client's own for a primary caller."""

    def send_batch(
        self: Any, batch: Any, topic: Any, *, partition: Any
    ) -> Coroutine[Any, Any, Any]:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, batch, topic, partition=partition)  # type: ignore[no-any-return]
        return _later(shadow_send_batch, self, batch, topic, partition)

    mark_wrapped(send_batch, original)
    return coroutine_function(send_batch)


async def _later(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` when awaited, as the client's coroutine raises when awaited."""
    return fn(*args)


def coroutine_function(fn: F) -> F:
    """``fn``, answering ``iscoroutinefunction`` as the coroutine method it replaces does.

    Before Python 3.12 only ``asyncio.iscoroutinefunction`` can be told (its marker);
    ``inspect.iscoroutinefunction`` answers False there.
    """
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        return mark(fn)  # type: ignore[no-any-return]
    fn._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    return fn


def shadow_send(
    producer: Any,
    topic: Any,
    value: Any,
    key: Any,
    partition: Any,
    timestamp_ms: Any,
    headers: Any,
) -> asyncio.Future[Any]:
    """What ``send`` returns in shadow, or what it raises; the attempt is recorded either way."""
    try:
        assert not (value is None and key is None), "Need at least one: key or value"
        headers = headers or []
        if _SERIALIZE_TAKES_HEADERS:
            key_bytes, value_bytes = producer._serialize(key, value, headers)
        else:
            key_bytes, value_bytes = producer._serialize(topic, key, value)
        partition = _partition(producer, topic, partition, key, value, key_bytes, value_bytes)
    except BaseException as exc:
        record(Kind.KAFKA_PRODUCE, _target(topic), "send", error=exc)
        raise
    stamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    record(Kind.KAFKA_PRODUCE, topic, "send", produce_detail(partition, key_bytes, value_bytes))
    return _resolved(topic, partition, stamp)


def shadow_send_batch(producer: Any, batch: Any, topic: Any, partition: Any) -> asyncio.Future[Any]:
    """What ``send_batch`` returns in shadow: the batch's metadata, nothing sent."""
    try:
        partition = _partition(producer, topic, partition, None, None, None, None)
    except BaseException as exc:
        record(Kind.KAFKA_PRODUCE, _target(topic), "send_batch", error=exc)
        raise
    detail = {
        "partition": partition,
        "records": batch.record_count(),
        "batch_bytes": batch.size(),
    }
    record(Kind.KAFKA_PRODUCE, topic, "send_batch", detail)
    # As the client's batch future: the broker's timestamp, -1 for CreateTime topics.
    return _resolved(topic, partition, -1)


def _partition(
    producer: Any,
    topic: Any,
    partition: Any,
    key: Any,
    value: Any,
    key_bytes: Any,
    value_bytes: Any,
) -> int:
    """The partitioner's choice if the producer knows the topic; else the one asked for, or 0."""
    if not isinstance(topic, str):
        raise TypeError(f"topic must be a str, not {type(topic).__name__}")
    if producer._metadata.partitions_for_topic(topic):
        return int(producer._partition(topic, partition, key, value, key_bytes, value_bytes))
    if partition is None:
        return 0
    assert partition >= 0
    return int(partition)


def _resolved(topic: str, partition: int, stamp: int) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    tp = TopicPartition(topic, partition)
    future.set_result(RecordMetadata(topic, partition, tp, -1, stamp, _CREATE_TIME, None))
    return future


def _target(topic: Any) -> str:
    return topic if isinstance(topic, str) else "?"
