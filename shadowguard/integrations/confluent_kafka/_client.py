"""What the client checks before it queues a message, raising what the client raises.

librdkafka refuses some messages in ``produce()`` itself (arguments, types, size) and the
broker fails others at delivery (topic names). The shadow path runs these checks so that a
shadow request fails where the primary would, with the same exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException

__all__ = [
    "DEFAULT_MAX_BYTES",
    "OMITTED",
    "batch_args",
    "batch_too_large",
    "check_batch",
    "headers_size",
    "legal_topic",
    "message_too_large",
    "payload",
    "produce_args",
    "too_large",
]

DEFAULT_MAX_BYTES = 1_000_000
#: An argument the caller did not give: the client tells "omitted" from "given as None".
OMITTED: Any = object()
# librdkafka's RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD: a message is refused locally when this
# plus key, value and serialized headers exceed message.max.bytes.
_MESSAGE_OVERHEAD = 36
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")

Callback = Callable[..., Any]


def produce_args(
    topic: str,
    value: Any = None,
    key: Any = None,
    partition: int = -1,
    callback: Callback | None = OMITTED,
    on_delivery: Callback | None = None,
    timestamp: int = 0,
    headers: Any = None,
    *extra: Any,
    **unknown: Any,
) -> tuple[str, Any, Any, int, Callback | None, int, Any]:
    """``Producer.produce``'s arguments as the client reads them, with its TypeErrors.

    Returns ``(topic, value, key, partition, callback, timestamp, headers)``; ``callback``
    is the one the client uses: ``on_delivery`` only when no ``callback`` was given.
    """
    if unknown:
        raise TypeError(f"'{next(iter(unknown))}' is an invalid keyword argument for this function")
    if extra:
        raise TypeError(f"function takes at most 8 arguments ({8 + len(extra)} given)")
    chosen = on_delivery if callback is OMITTED else callback
    return topic, value, key, partition, chosen, timestamp, headers


def payload(obj: Any, position: int) -> bytes | None:
    """A key or value as the client takes it: None, bytes, or str encoded as UTF-8."""
    if obj is None or isinstance(obj, bytes):
        return obj
    if isinstance(obj, str):
        return obj.encode("utf-8")
    if isinstance(obj, (bytearray, memoryview)):
        raise TypeError(
            f"argument {position} must be read-only bytes-like object, not {type(obj).__name__}"
        )
    raise TypeError(f"a bytes-like object is required, not '{type(obj).__name__}'")


def headers_size(headers: Any) -> int:
    """The size of ``headers`` in a record, checking them as the client does."""
    if headers is None:
        return 0
    if isinstance(headers, dict):
        items = list(headers.items())
    elif isinstance(headers, list):
        items = []
        for item in headers:
            if not isinstance(item, tuple) or len(item) != 2:
                raise TypeError("Headers are expected to be a list of (key, value) tuples")
            items.append(item)
    else:
        raise TypeError(
            "expected headers to be dict or list of (key, value) tuples, "
            f"not {type(headers).__name__}"
        )
    size = 0
    for key, value in items:
        # librdkafka takes names and str values as C strings: they end at the first NUL.
        name = (key if isinstance(key, str) else str(key)).encode("utf-8").split(b"\0", 1)[0]
        if value is None:
            length = -1
        elif isinstance(value, bytes):
            length = len(value)
        elif isinstance(value, str):
            length = len(value.encode("utf-8").split(b"\0", 1)[0])
        else:
            raise TypeError(
                "expected header value to be None, binary, or unicode string, "
                f"not {type(value).__name__}"
            )
        size += _varint_size(len(name)) + len(name) + _varint_size(length) + max(length, 0)
    return size


def _varint_size(value: int) -> int:
    zigzag = (value << 1) ^ (value >> 63)
    size = 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def too_large(key: bytes | None, value: bytes | None, headers_bytes: int, max_bytes: int) -> bool:
    """Would the client refuse this record for ``message.max.bytes``?"""
    wire = _MESSAGE_OVERHEAD + len(key or b"") + len(value or b"") + headers_bytes
    return wire > max_bytes


def message_too_large() -> KafkaException:
    """What ``produce()`` raises for a message over ``message.max.bytes``."""
    return KafkaException(
        KafkaError(
            KafkaError.MSG_SIZE_TOO_LARGE,
            "Unable to produce message: Broker: Message size too large",
        )
    )


def legal_topic(topic: str) -> bool:
    """Kafka's rule for topic names; the broker fails delivery of anything else."""
    return _LEGAL_TOPIC.fullmatch(topic) is not None and topic not in {".", ".."}


def batch_args(
    topic: str,
    messages: list[dict[str, Any]],
    partition: int = -1,
    callback: Callback | None = None,
    on_delivery: Callback | None = None,
) -> tuple[str, list[dict[str, Any]], int, Callback | None]:
    """``Producer.produce_batch``'s signature."""
    return topic, messages, partition, callback or on_delivery


def check_batch(messages: Any) -> list[tuple[bytes | None, bytes | None]]:
    """The checks ``produce_batch`` makes on every message before it queues any.

    Returns each message's ``(key, value)`` as bytes.
    """
    if not isinstance(messages, list):
        raise TypeError("messages must be a list")
    checked = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise TypeError(f"Message at index {index} must be a dict")
        payloads = []
        for field in ("value", "key"):
            obj = message.get(field)
            if obj is not None and not isinstance(obj, (bytes, str)):
                raise TypeError(f"Message {field} at index {index} must be bytes or str")
            payloads.append(obj.encode("utf-8") if isinstance(obj, str) else obj)
        if "partition" in message and not isinstance(message["partition"], int):
            raise TypeError(f"Message partition at index {index} must be int")
        if "timestamp" in message:
            raise NotImplementedError(
                "Message timestamps are not currently supported in batch mode"
            )
        checked.append((payloads[1], payloads[0]))
    return checked


def batch_too_large() -> KafkaError:
    """The error a batched message over ``message.max.bytes`` fails with."""
    return KafkaError(
        KafkaError.MSG_SIZE_TOO_LARGE, "Message failed: Broker: Message size too large"
    )
