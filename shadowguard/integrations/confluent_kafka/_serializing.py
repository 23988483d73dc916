"""The serializer step of the serializing producers, run in shadow as the library runs it.

``SerializingProducer`` and ``AsyncSerializingProducer`` serialize key and value before
producing; in shadow the same serializers run with the same context and the same
errors (a Schema Registry serializer included), and only the produce step is emulated.
One generator serves both: the sync driver runs it, the async one awaits what it yields.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import Any

from confluent_kafka.error import KeySerializationError, ValueSerializationError
from confluent_kafka.serialization import MessageField, SerializationContext

__all__ = ["run_async", "run_sync", "serialize", "serializing_args"]

Steps = Generator[Any, Any, tuple[Any, Any]]


def serializing_args(
    topic: str,
    key: Any = None,
    value: Any = None,
    partition: int = -1,
    on_delivery: Callable[..., Any] | None = None,
    timestamp: int = 0,
    headers: Any = None,
) -> tuple[str, Any, Any, int, Callable[..., Any] | None, int, Any]:
    """``SerializingProducer.produce``'s signature (key before value)."""
    return topic, key, value, partition, on_delivery, timestamp, headers


def serialize(producer: Any, topic: Any, key: Any, value: Any, headers: Any, closed: bool) -> Steps:
    """Serialize ``key`` then ``value`` with ``producer``'s serializers; returns both."""
    if closed:
        raise RuntimeError("Producer has been closed")
    if not isinstance(topic, str):
        raise TypeError(f"topic must be a str, not {type(topic).__name__}")
    context = SerializationContext(topic, MessageField.KEY, headers)
    if producer._key_serializer is not None:
        try:
            key = yield producer._key_serializer(key, context)
        except Exception as exc:
            raise KeySerializationError(exc) from None
    context.field = MessageField.VALUE
    if producer._value_serializer is not None:
        try:
            value = yield producer._value_serializer(value, context)
        except Exception as exc:
            raise ValueSerializationError(exc) from None
    return key, value


def run_sync(steps: Steps) -> tuple[Any, Any]:
    """Drive :func:`serialize` for a synchronous producer."""
    result = None
    try:
        while True:
            result = steps.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_async(steps: Steps) -> tuple[Any, Any]:
    """Drive :func:`serialize` for an asyncio producer, awaiting async serializers."""
    result = None
    try:
        while True:
            result = steps.send(result)
            if inspect.isawaitable(result):
                result = await result
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
