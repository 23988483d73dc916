"""The shadow produce paths, in call order: check as the client would, owe the report, record.

Every guarded ``produce()`` and ``produce_batch()`` ends here in shadow, and nothing
reaches librdkafka. A message the client would refuse raises what the client raises (the
attempt is recorded with that error); one it would take gets its delivery report owed by
the producer's outbox and is recorded as ``Kind.KAFKA_PRODUCE``.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from shadowguard.contract import Kind, record
from shadowguard.integrations.confluent_kafka._client import (
    batch_args,
    batch_too_large,
    check_batch,
    headers_size,
    legal_topic,
    message_too_large,
    payload,
    produce_args,
    too_large,
)
from shadowguard.integrations.confluent_kafka._outbox import Outbox, delivery_message
from shadowguard.integrations.confluent_kafka._serializing import (
    run_async,
    run_sync,
    serialize,
    serializing_args,
)

__all__ = [
    "shadow_aio_produce",
    "shadow_aio_serializing_produce",
    "shadow_produce",
    "shadow_produce_batch",
    "shadow_produce_call",
    "shadow_serializing_produce",
]


def shadow_produce(
    outbox: Outbox,
    topic: Any,
    value: Any,
    key: Any,
    partition: Any,
    callback: Callable[..., Any] | None,
    timestamp: Any,
    headers: Any,
) -> None:
    """``Producer.produce`` in shadow, given the arguments as the client reads them."""
    try:
        # The client's order: argument types first, then headers, then the size.
        if not isinstance(topic, str):
            raise TypeError(f"argument 1 must be str, not {type(topic).__name__}")
        value_bytes = payload(value, 2)
        key_bytes = payload(key, 3)
        partition = operator.index(partition)
        timestamp = operator.index(timestamp)
        headers_bytes = headers_size(headers)
        if too_large(key_bytes, value_bytes, headers_bytes, outbox.max_bytes):
            raise message_too_large()
    except Exception as exc:
        record(Kind.KAFKA_PRODUCE, _target(topic), "produce", error=exc)
        raise
    error = outbox.owe(topic, key_bytes, value_bytes, partition, timestamp, callback)
    detail = _detail(partition, key_bytes, value_bytes)
    detail["headers_bytes"] = headers_bytes
    record(Kind.KAFKA_PRODUCE, topic, "produce", detail, error=_failure(error))


def shadow_produce_call(outbox: Outbox, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """``Producer.produce(*args, **kwargs)`` in shadow: the signature checked first."""
    try:
        parsed = produce_args(*args, **kwargs)
    except TypeError as exc:
        record(
            Kind.KAFKA_PRODUCE,
            _target(args[0] if args else kwargs.get("topic")),
            "produce",
            error=exc,
        )
        raise
    shadow_produce(outbox, *parsed)


def shadow_serializing_produce(
    producer: Any, outbox: Outbox, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> None:
    """``SerializingProducer.produce`` in shadow: serialize as the library does, send nothing."""
    topic = args[0] if args else kwargs.get("topic")
    try:
        topic, key, value, partition, callback, stamp, headers = serializing_args(*args, **kwargs)
        closed = getattr(producer, "_closed", False)
        key, value = run_sync(serialize(producer, topic, key, value, headers, closed))
    except Exception as exc:
        record(Kind.KAFKA_PRODUCE, _target(topic), "produce", error=exc)
        raise
    shadow_produce(outbox, topic, value, key, partition, callback, stamp, headers)


def shadow_produce_batch(outbox: Outbox, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """``Producer.produce_batch`` in shadow; returns how many messages the client would queue."""
    try:
        topic, messages, partition, default_callback = batch_args(*args, **kwargs)
        if not isinstance(topic, str):
            raise TypeError(f"argument 1 must be str, not {type(topic).__name__}")
        partition = operator.index(partition)
        checked = check_batch(messages)
    except Exception as exc:
        target = _target(args[0] if args else kwargs.get("topic"))
        record(Kind.KAFKA_PRODUCE, target, "produce_batch", error=exc)
        raise
    queued = 0
    for message, (key, value) in zip(messages, checked, strict=True):
        detail = _detail(partition, key, value)
        if too_large(key, value, 0, outbox.max_bytes):
            # As the client: the message is marked and left out, the batch goes on.
            message["_error"] = batch_too_large()
            record(
                Kind.KAFKA_PRODUCE,
                topic,
                "produce_batch",
                detail,
                error=KafkaException(message["_error"]),
            )
            continue
        queued += 1
        callback = message.get("callback") or default_callback
        error = outbox.owe(topic, key, value, partition, 0, callback)
        record(Kind.KAFKA_PRODUCE, topic, "produce_batch", detail, error=_failure(error))
    return queued


def shadow_aio_produce(
    outbox: Outbox, topic: Any, value: Any, key: Any, options: Mapping[str, Any]
) -> asyncio.Future[Any]:
    """What ``AIOProducer.produce`` leads to, settled at once: a future of the report.

    The asyncio producer sends its messages as a batch later, so the batch's checks and
    errors apply; ``options`` are its keyword arguments (partition, timestamp, headers).
    """
    if "headers" in options:
        raise NotImplementedError(
            "Headers are not supported in AIOProducer batch mode. "
            "Use the synchronous Producer.produce() method if headers are required."
        )
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    message = {"value": value, "key": key}
    message.update({k: options[k] for k in ("partition", "timestamp") if k in options})
    try:
        if not isinstance(topic, str):
            raise TypeError(f"argument 1 must be str, not {type(topic).__name__}")
        ((key_bytes, value_bytes),) = check_batch([message])
        partition = operator.index(message.get("partition", -1))
    except Exception as exc:
        record(Kind.KAFKA_PRODUCE, _target(topic), "produce", error=exc)
        future.set_exception(exc)
        return future
    detail = _detail(partition, key_bytes, value_bytes)
    if too_large(key_bytes, value_bytes, 0, outbox.max_bytes):
        error = batch_too_large()
    elif not legal_topic(topic):
        error = KafkaError(KafkaError.TOPIC_EXCEPTION)
    else:
        record(Kind.KAFKA_PRODUCE, topic, "produce", detail)
        future.set_result(delivery_message(topic, key_bytes, value_bytes, partition, 0, None))
        return future
    failure = KafkaException(error)
    record(Kind.KAFKA_PRODUCE, topic, "produce", detail, error=failure)
    future.set_exception(failure)
    return future


async def shadow_aio_serializing_produce(
    producer: Any, outbox: Outbox, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> asyncio.Future[Any]:
    """``AsyncSerializingProducer.produce`` in shadow: serialize, then as the asyncio producer."""
    topic, key, value, partition, _, stamp, headers = serializing_args(*args, **kwargs)
    try:
        steps = serialize(producer, topic, key, value, headers, producer._is_closed)
        key, value = await run_async(steps)
    except Exception as exc:
        record(Kind.KAFKA_PRODUCE, _target(topic), "produce", error=exc)
        raise
    # Only what the caller gave, as the library passes it on to AIOProducer.produce.
    options: dict[str, Any] = {}
    if partition != -1:
        options["partition"] = partition
    if stamp != 0:
        options["timestamp"] = stamp
    if headers is not None:
        options["headers"] = headers
    return shadow_aio_produce(outbox, topic, value, key, options)


def _target(topic: Any) -> str:
    return topic if isinstance(topic, str) else "?"


def _detail(partition: int, key: bytes | None, value: bytes | None) -> dict[str, Any]:
    return {"partition": partition, "key_bytes": len(key or b""), "value_bytes": len(value or b"")}


def _failure(error: KafkaError | None) -> KafkaException | None:
    """The exception a delivery report's error stands for, or None for a delivered message."""
    return KafkaException(error) if error is not None else None
