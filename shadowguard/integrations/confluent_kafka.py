"""confluent-kafka: in shadow, serialize and validate every message, send none.

``install()`` swaps guarded subclasses into ``confluent_kafka`` (``Producer``,
``SerializingProducer``) and ``confluent_kafka.aio`` (``AIOProducer``,
``AsyncSerializingProducer``), and keeps Schema Registry serializers from registering
schemas in shadow. ``guard(producer)`` covers a producer created before ``install()``.

In shadow, ``produce()`` and ``produce_batch()`` run the serializers and the checks the
client and the broker would apply, raise what the client raises, record a
``Suppression(kind="kafka.produce")`` and queue a delivery report for the next
``poll()``/``flush()`` of the producer; nothing reaches librdkafka. Transactions and
``purge()`` become no-ops in shadow, so a shadow request can neither fence, commit, abort
nor purge the primary's work on a shared producer.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import operator
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import wrapt

from shadowguard._context import record_suppression
from shadowguard._patching import Patches
from shadowguard.contract import PROCESS, as_primary, scope_now
from shadowguard.errors import ShadowSideEffectBlocked, missing_extra_error

try:
    import confluent_kafka
    from confluent_kafka import KafkaError, KafkaException, Message, cimpl
    from confluent_kafka import SerializingProducer as _SerializingProducer
    from confluent_kafka.error import KeySerializationError, ValueSerializationError
    from confluent_kafka.serialization import MessageField, SerializationContext
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise missing_extra_error("confluent_kafka", "kafka") from exc

_aio: ModuleType | None
try:
    from confluent_kafka import aio as _aio
except ImportError:  # confluent-kafka before the asyncio producers
    _aio = None

__all__ = [
    "GuardedAIOProducer",
    "GuardedAsyncSerializingProducer",
    "GuardedProducer",
    "GuardedSerializingProducer",
    "guard",
    "install",
    "uninstall",
]

logger = logging.getLogger("shadowguard")
_patches = Patches("confluent_kafka")

_DEFAULT_MAX_BYTES = 1_000_000
_NO_TIMESTAMP = 0  # compared by identity: 0.0 or False must reach the client as given
_OMITTED: Any = object()
# librdkafka's RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD: a message is refused locally when this
# plus key, value and serialized headers exceed message.max.bytes.
_MESSAGE_OVERHEAD = 36
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")

_Report = tuple[contextvars.Context, Callable[..., Any], "KafkaError | None", "Message"]


class _Outbox:
    """One producer's shadow side: its limits and the delivery reports it owes."""

    __slots__ = ("default_callback", "max_bytes", "only_errors", "reports", "transactional_id")

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        settings = {str(k).replace("_", "."): v for k, v in (config or {}).items()}
        try:
            self.max_bytes = int(settings.get("message.max.bytes", _DEFAULT_MAX_BYTES))
        except (TypeError, ValueError):  # the client itself rejects it, with its own error
            self.max_bytes = _DEFAULT_MAX_BYTES
        callback = settings.get("on.delivery")
        self.default_callback: Callable[..., Any] | None = callback if callable(callback) else None
        self.only_errors = str(settings.get("delivery.report.only.error", "false")).lower() in {
            "true",
            "1",
        }
        self.transactional_id = settings.get("transactional.id")
        self.reports: deque[_Report] = deque()

    def serve(self) -> int:
        """Run the pending shadow callbacks, each in the context that produced it.

        Called for a primary caller, a failing callback is logged, never raised: the
        primary's poll()/flush()/close() must not fail because of shadow work.
        """
        contain = scope_now() is None and not PROCESS.shadow
        served = 0
        while True:
            try:
                context, callback, error, message = self.reports.popleft()
            except IndexError:
                return served
            served += 1
            if not contain:
                context.run(callback, error, message)
                continue
            try:
                context.run(callback, error, message)
            except Exception:
                logger.exception(
                    "shadowguard: a shadow delivery callback failed; the error is not "
                    "raised into the primary caller that served it"
                )

    def purge(self) -> None:
        """Fail every pending shadow report with ``_PURGE_QUEUE``, as purge() does."""
        pending = []
        while self.reports:
            context, callback, _, message = self.reports.popleft()
            error = KafkaError(KafkaError._PURGE_QUEUE)
            message.set_error(error)
            pending.append((context, callback, error, message))
        self.reports.extend(pending)


def _outbox_from_args(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> _Outbox:
    config: dict[str, Any] = {}
    if args and isinstance(args[0], Mapping):
        config.update(args[0])
    config.update(kwargs)
    return _Outbox(config)


# --- what the client checks before it queues a message -------------------------------


def _varint_size(value: int) -> int:
    zigzag = (value << 1) ^ (value >> 63)
    size = 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def _payload(obj: Any, position: int) -> bytes | None:
    if obj is None or isinstance(obj, bytes):
        return obj
    if isinstance(obj, str):
        return obj.encode("utf-8")
    if isinstance(obj, (bytearray, memoryview)):
        raise TypeError(
            f"argument {position} must be read-only bytes-like object, not {type(obj).__name__}"
        )
    raise TypeError(f"a bytes-like object is required, not '{type(obj).__name__}'")


def _headers_size(headers: Any) -> int:
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


def _legal_topic(topic: str) -> bool:
    """Kafka's rule for topic names; the broker fails delivery of anything else."""
    return _LEGAL_TOPIC.fullmatch(topic) is not None and topic not in {".", ".."}


def _too_large(key: bytes | None, value: bytes | None, headers_size: int, max_bytes: int) -> bool:
    wire = _MESSAGE_OVERHEAD + len(key or b"") + len(value or b"") + headers_size
    return wire > max_bytes


def _produce_args(
    topic: str,
    value: Any = None,
    key: Any = None,
    partition: int = -1,
    callback: Callable[..., Any] | None = None,
    *args: Any,
    on_delivery: Callable[..., Any] | None = None,
    timestamp: int = 0,
    headers: Any = None,
    **kwargs: Any,
) -> tuple[str, Any, Any, int, Callable[..., Any] | None, int, Any]:
    """``Producer.produce``'s arguments as the client reads them, with its TypeErrors."""
    if kwargs:
        raise TypeError(f"'{next(iter(kwargs))}' is an invalid keyword argument for this function")
    if len(args) > 3:
        raise TypeError(f"function takes at most 8 arguments ({5 + len(args)} given)")
    # Positions 6 to 8 are on_delivery, timestamp and headers; the client ignores a
    # callback given as the sixth positional argument, and so does the shadow path.
    if len(args) >= 2:
        timestamp = args[1]
    if len(args) == 3:
        headers = args[2]
    return topic, value, key, partition, callback or on_delivery, timestamp, headers


def _queue_report(
    outbox: _Outbox,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    partition: int,
    timestamp: int,
    callback: Callable[..., Any] | None,
) -> KafkaError | None:
    """Queue the delivery report the broker would cause, and return its error."""
    error = None if _legal_topic(topic) else KafkaError(KafkaError.TOPIC_EXCEPTION)
    callback = callback or outbox.default_callback
    if callback is None or (error is None and outbox.only_errors):
        return error
    fields: dict[str, Any] = {"topic": topic, "key": key, "value": value, "latency": 0.0}
    if error is not None:
        fields.update(error=error, timestamp=(confluent_kafka.TIMESTAMP_NOT_AVAILABLE, -1))
    else:
        stamp = timestamp or int(time.time() * 1000)
        fields["timestamp"] = (confluent_kafka.TIMESTAMP_CREATE_TIME, stamp)
        if partition >= 0:
            fields["partition"] = partition
    message = Message(**fields)
    outbox.reports.append((contextvars.copy_context(), callback, error, message))
    return error


def _suppress(topic: str, detail: dict[str, Any], error: BaseException | None = None) -> None:
    record_suppression("kafka.produce", topic, detail, error)


def _detail(
    operation: str, partition: int, key: bytes | None, value: bytes | None
) -> dict[str, Any]:
    return {
        "operation": operation,
        "partition": partition,
        "key_bytes": len(key or b""),
        "value_bytes": len(value or b""),
    }


def _batch_too_large() -> KafkaError:
    """The error a batched message over ``message.max.bytes`` fails with."""
    return KafkaError(
        KafkaError.MSG_SIZE_TOO_LARGE, "Message failed: Broker: Message size too large"
    )


def _shadow_produce(outbox: _Outbox, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        topic, value, key, partition, callback, timestamp, headers = _produce_args(*args, **kwargs)
        if not isinstance(topic, str):
            raise TypeError(f"argument 1 must be str, not {type(topic).__name__}")
        value_bytes = _payload(value, 2)
        key_bytes = _payload(key, 3)
        partition = operator.index(partition)
        timestamp = operator.index(timestamp)
        headers_size = _headers_size(headers)
        if _too_large(key_bytes, value_bytes, headers_size, outbox.max_bytes):
            raise KafkaException(
                KafkaError(
                    KafkaError.MSG_SIZE_TOO_LARGE,
                    "Unable to produce message: Broker: Message size too large",
                )
            )
    except Exception as exc:
        target = args[0] if args and isinstance(args[0], str) else str(kwargs.get("topic", "?"))
        _suppress(target, {"operation": "produce"}, exc)
        raise
    error = _queue_report(outbox, topic, key_bytes, value_bytes, partition, timestamp, callback)
    detail = _detail("produce", partition, key_bytes, value_bytes)
    detail["headers_bytes"] = headers_size
    _suppress(topic, detail, KafkaException(error) if error is not None else None)


def _batch_args(
    topic: str,
    messages: list[dict[str, Any]],
    partition: int = -1,
    callback: Callable[..., Any] | None = None,
    on_delivery: Callable[..., Any] | None = None,
) -> tuple[str, list[dict[str, Any]], int, Callable[..., Any] | None]:
    """``Producer.produce_batch``'s signature."""
    return topic, messages, partition, callback or on_delivery


def _check_batch(messages: Any) -> list[tuple[bytes | None, bytes | None]]:
    """The checks ``produce_batch`` makes on every message before it queues any."""
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


def _shadow_produce_batch(outbox: _Outbox, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    try:
        topic, messages, partition, default_callback = _batch_args(*args, **kwargs)
        if not isinstance(topic, str):
            raise TypeError(f"argument 1 must be str, not {type(topic).__name__}")
        partition = operator.index(partition)
        checked = _check_batch(messages)
    except Exception as exc:
        target = args[0] if args and isinstance(args[0], str) else str(kwargs.get("topic", "?"))
        _suppress(target, {"operation": "produce_batch"}, exc)
        raise
    queued = 0
    for message, (key, value) in zip(messages, checked, strict=True):
        detail = _detail("produce_batch", partition, key, value)
        if _too_large(key, value, 0, outbox.max_bytes):
            message["_error"] = _batch_too_large()
            _suppress(topic, detail, KafkaException(message["_error"]))
            continue
        queued += 1
        callback = message.get("callback") or default_callback
        error = _queue_report(outbox, topic, key, value, partition, 0, callback)
        _suppress(topic, detail, KafkaException(error) if error is not None else None)
    return queued


def _suppress_transaction(outbox: _Outbox, operation: str) -> None:
    record_suppression(
        "kafka.produce",
        str(outbox.transactional_id or "<transaction>"),
        {"operation": operation},
    )


# --- shared by the guarded subclasses and the guard() proxies --------------------------
# Each hot method keeps its cheap pass-through as its own first line and shares only what
# comes after it, given the real method bound and the outbox. The rarer methods are shared
# whole, through _Hooks: the subclasses reach the real method through the class they
# guard, the proxies through the wrapped producer.


def _poll_serving(outbox: _Outbox, poll: Callable[[float], int], timeout: float) -> int:
    """``poll()`` when shadow reports are owed or the caller is in shadow."""
    if scope_now() is None and not PROCESS.shadow:
        # A primary caller: shadow reports are served but change neither its
        # timeout nor its count.
        outbox.serve()
        return poll(timeout)
    served = outbox.serve()
    with as_primary():
        return served + poll(0 if served else timeout)


def _serve_then(outbox: _Outbox, call: Callable[..., Any], *args: Any) -> Any:
    """Serve the shadow reports owed, then run ``call`` as primary work (flush, close)."""
    outbox.serve()
    with as_primary():
        return call(*args)


class _Hooks:
    """How a guarded class or proxy reaches its real methods and its outbox."""

    __slots__ = ()

    def _sg_method(self, name: str) -> Callable[..., Any]:
        raise NotImplementedError

    def _sg_box(self) -> _Outbox:
        raise NotImplementedError


def _transaction(name: str) -> Callable[..., None]:
    """A transaction method: the real one for a primary caller, a recorded no-op in shadow."""

    def method(self: _Hooks, *args: Any, **kwargs: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return self._sg_method(name)(*args, **kwargs)  # type: ignore[no-any-return]
        _suppress_transaction(self._sg_box(), name)
        return None

    method.__name__ = name
    method.__qualname__ = f"_Transactions.{name}"
    return method


def _async_transaction(name: str) -> Callable[..., Any]:
    """:func:`_transaction` for the asyncio producers."""

    async def method(self: _Hooks, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await self._sg_method(name)(*args, **kwargs)
        _suppress_transaction(self._sg_box(), name)
        return None

    method.__name__ = name
    method.__qualname__ = f"_AsyncTransactions.{name}"
    return method


class _Transactions(_Hooks):
    """The transaction methods of the synchronous producers: no-ops in shadow."""

    __slots__ = ()

    init_transactions = _transaction("init_transactions")
    begin_transaction = _transaction("begin_transaction")
    send_offsets_to_transaction = _transaction("send_offsets_to_transaction")
    commit_transaction = _transaction("commit_transaction")
    abort_transaction = _transaction("abort_transaction")


class _AsyncTransactions(_Hooks):
    """The transaction methods of the asyncio producers: no-ops in shadow."""

    __slots__ = ()

    init_transactions = _async_transaction("init_transactions")
    begin_transaction = _async_transaction("begin_transaction")
    send_offsets_to_transaction = _async_transaction("send_offsets_to_transaction")
    commit_transaction = _async_transaction("commit_transaction")
    abort_transaction = _async_transaction("abort_transaction")


def _real_method(producer: Any, name: str) -> Callable[..., Any]:
    """``producer``'s method ``name`` as the class it guards (``_sg_real``) defines it."""
    return functools.partial(getattr(producer._sg_real, name), producer)


class _ProxyHooks(_Hooks):
    """The hooks of the ``guard()`` proxies: the wrapped producer and ``_self_outbox``."""

    __slots__ = ()
    __wrapped__: Any
    _self_outbox: _Outbox

    def _sg_method(self, name: str) -> Callable[..., Any]:
        return getattr(self.__wrapped__, name)  # type: ignore[no-any-return]

    def _sg_box(self) -> _Outbox:
        return self._self_outbox


# --- the subclasses install() swaps in ------------------------------------------------

_produce: Callable[..., None] = cimpl.Producer.produce
_produce_batch: Callable[..., int] = cimpl.Producer.produce_batch
_poll: Callable[..., int] = cimpl.Producer.poll
_flush: Callable[..., int] = cimpl.Producer.flush
_purge: Callable[..., None] = cimpl.Producer.purge
_serializing_produce: Callable[..., None] = _SerializingProducer.produce


class _Swapped(type):
    """``isinstance``/``issubclass`` against a swapped-in class answer for the original.

    After ``install()``, ``isinstance(p, confluent_kafka.Producer)`` stays true for a
    producer created before it, as it was.
    """

    def __instancecheck__(cls, obj: Any) -> bool:
        original = cls.__dict__.get("_sg_original")
        if original is None:
            return super().__instancecheck__(obj)
        return isinstance(obj, original)

    def __subclasscheck__(cls, sub: type) -> bool:
        original = cls.__dict__.get("_sg_original")
        if original is None:
            return super().__subclasscheck__(sub)
        return issubclass(sub, original)


def _is_guarded(producer: Any) -> bool:
    return getattr(type(producer), "_sg_guarded", False) is True


class _SyncGuard(_Transactions):
    """Everything but ``produce()`` of a guarded synchronous producer."""

    _sg_guarded = True
    _sg_real = cimpl.Producer
    _sg_outbox: _Outbox

    def produce_batch(self, *args: Any, **kwargs: Any) -> int:
        if scope_now() is None and not PROCESS.shadow:
            return _produce_batch(self, *args, **kwargs)
        return _shadow_produce_batch(self._sg_outbox, args, kwargs)

    def poll(self, timeout: float = -1) -> int:
        outbox = self._sg_outbox
        if not outbox.reports and scope_now() is None:
            return _poll(self, timeout)
        return _poll_serving(outbox, functools.partial(_poll, self), timeout)

    def flush(self, timeout: float = -1) -> int:
        outbox = self._sg_outbox
        if not outbox.reports and scope_now() is None:
            return _flush(self, timeout)
        return _serve_then(outbox, _flush, self, timeout)  # type: ignore[no-any-return]

    def purge(self, in_queue: bool = True, *args: Any, **kwargs: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return _purge(self, in_queue, *args, **kwargs)
        if in_queue:
            self._sg_outbox.purge()
        return None

    def close(self) -> bool:
        return _serve_then(self._sg_outbox, super().close)  # type: ignore[misc,no-any-return]

    def __exit__(self, *exc_info: Any) -> Any:
        return _serve_then(self._sg_outbox, super().__exit__, *exc_info)  # type: ignore[misc]

    _sg_method = _real_method

    def _sg_box(self) -> _Outbox:
        return self._sg_outbox


class GuardedProducer(_SyncGuard, cimpl.Producer, metaclass=_Swapped):
    """``confluent_kafka.Producer`` that sends nothing in shadow (see the module doc)."""

    _sg_original = cimpl.Producer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._sg_outbox = _outbox_from_args(args, kwargs)
        super().__init__(*args, **kwargs)

    def produce(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int = -1,
        callback: Any = _OMITTED,
        *args: Any,
        on_delivery: Callable[..., Any] | None = None,
        timestamp: int = 0,
        headers: Any = None,
    ) -> None:
        if scope_now() is None and not PROCESS.shadow:
            # Named parameters, not *args/**kwargs, on the hot path: forwarding a packed
            # call costs more than the whole guard. An omitted callback is not passed on:
            # the client ignores on_delivery when callback is given, even as None.
            if args:  # a sixth positional argument or more: forward them as given
                kwargs: dict[str, Any] = {}
                if on_delivery is not None:
                    kwargs["on_delivery"] = on_delivery
                if timestamp is not _NO_TIMESTAMP:
                    kwargs["timestamp"] = timestamp
                if headers is not None:
                    kwargs["headers"] = headers
                return _produce(self, topic, value, key, partition, callback, *args, **kwargs)
            if callback is _OMITTED:
                if on_delivery is None and timestamp is _NO_TIMESTAMP and headers is None:
                    return _produce(self, topic, value, key, partition)
                return _produce(
                    self,
                    topic,
                    value,
                    key,
                    partition,
                    on_delivery=on_delivery,
                    timestamp=timestamp,
                    headers=headers,
                )
            return _produce(
                self,
                topic,
                value,
                key,
                partition,
                callback,
                on_delivery=on_delivery,
                timestamp=timestamp,
                headers=headers,
            )
        given = (topic, value, key, partition, None if callback is _OMITTED else callback, *args)
        _shadow_produce(
            self._sg_outbox,
            given,
            {"on_delivery": on_delivery, "timestamp": timestamp, "headers": headers},
        )
        return None


class GuardedSerializingProducer(_SyncGuard, _SerializingProducer, metaclass=_Swapped):
    """``confluent_kafka.SerializingProducer`` that serializes but sends nothing in shadow."""

    _sg_original = _SerializingProducer

    def __init__(self, conf: dict[str, Any]) -> None:
        self._sg_outbox = _Outbox(conf)
        super().__init__(conf)

    def produce(  # type: ignore[override]  # SerializingProducer's own signature
        self,
        topic: str,
        key: Any = None,
        value: Any = None,
        partition: int = -1,
        on_delivery: Callable[..., Any] | None = None,
        timestamp: int = 0,
        headers: Any = None,
    ) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return _serializing_produce(
                self, topic, key, value, partition, on_delivery, timestamp, headers
            )
        _shadow_serializing_produce(
            self,
            self._sg_outbox,
            (topic, key, value, partition, on_delivery, timestamp, headers),
            {},
        )
        return None


# --- asyncio producers -----------------------------------------------------------------


def _shadow_aio_produce(
    outbox: _Outbox, topic: Any, value: Any, key: Any, kwargs: Mapping[str, Any]
) -> asyncio.Future[Any]:
    """What ``AIOProducer.produce`` leads to, settled at once: a future of the report."""
    if "headers" in kwargs:
        raise NotImplementedError(
            "Headers are not supported in AIOProducer batch mode. "
            "Use the synchronous Producer.produce() method if headers are required."
        )
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    message = {"value": value, "key": key}
    message.update({k: kwargs[k] for k in ("partition", "timestamp") if k in kwargs})
    target = topic if isinstance(topic, str) else "?"
    try:
        if not isinstance(topic, str):
            raise TypeError(f"argument 1 must be str, not {type(topic).__name__}")
        ((key_bytes, value_bytes),) = _check_batch([message])
        partition = operator.index(message.get("partition", -1))
    except Exception as exc:
        _suppress(target, {"operation": "produce"}, exc)
        future.set_exception(exc)
        return future
    detail = _detail("produce", partition, key_bytes, value_bytes)
    if _too_large(key_bytes, value_bytes, 0, outbox.max_bytes):
        error = _batch_too_large()
    elif not _legal_topic(topic):
        error = KafkaError(KafkaError.TOPIC_EXCEPTION)
    else:
        reports = _Outbox()
        _queue_report(reports, topic, key_bytes, value_bytes, partition, 0, lambda e, m: None)
        _suppress(topic, detail)
        future.set_result(reports.reports[0][3])
        return future
    failure = KafkaException(error)
    _suppress(topic, detail, failure)
    future.set_exception(failure)
    return future


def _aio_outbox(producer: Any) -> _Outbox:
    outbox = producer.__dict__.get("_sg_outbox")
    if outbox is None:
        # The inner producer knows the configuration when it is a guarded one.
        outbox = getattr(producer._producer, "_sg_outbox", None) or _Outbox()
        producer._sg_outbox = outbox
    return outbox  # type: ignore[no-any-return]


class _AIOGuard(_AsyncTransactions):
    """The methods a guarded asyncio producer overrides; ``_sg_real`` is the class guarded."""

    _sg_guarded = True
    _sg_real: Any

    async def produce(
        self, topic: str, value: Any = None, key: Any = None, *args: Any, **kwargs: Any
    ) -> asyncio.Future[Any]:
        if scope_now() is None and not PROCESS.shadow:
            return await self._sg_real.produce(self, topic, value, key, *args, **kwargs)  # type: ignore[no-any-return]
        return _shadow_aio_produce(_aio_outbox(self), topic, value, key, kwargs)

    async def poll(self, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None:
            return await self._sg_real.poll(self, *args, **kwargs)
        with as_primary():
            return await self._sg_real.poll(self, *args, **kwargs)

    async def flush(self, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None:
            return await self._sg_real.flush(self, *args, **kwargs)
        with as_primary():
            return await self._sg_real.flush(self, *args, **kwargs)

    async def purge(self, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await self._sg_real.purge(self, *args, **kwargs)
        return None

    _sg_method = _real_method
    _sg_box = _aio_outbox


if _aio is not None:
    _AIOProducer: Any = _aio.AIOProducer
    _AsyncSerializingProducer: Any = _aio.AsyncSerializingProducer

    class GuardedAIOProducer(_AIOGuard, _AIOProducer, metaclass=_Swapped):  # type: ignore[misc]
        """``confluent_kafka.aio.AIOProducer`` that sends nothing in shadow.

        In shadow, ``produce()`` returns a future already settled with the synthetic
        delivery report (or the error the batch would have failed with).
        """

        _sg_real = _AIOProducer
        _sg_original = _AIOProducer

    class GuardedAsyncSerializingProducer(_AsyncSerializingProducer, GuardedAIOProducer):  # type: ignore[misc]
        """``confluent_kafka.aio.AsyncSerializingProducer``: serializes, sends nothing in shadow."""

        _sg_original = _AsyncSerializingProducer

else:  # pragma: no cover - confluent-kafka without confluent_kafka.aio
    GuardedAIOProducer = None  # type: ignore[assignment,misc]
    GuardedAsyncSerializingProducer = None  # type: ignore[assignment,misc]


# --- guard(): one producer created before install() -----------------------------------


def _serializing_args(
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


def _serialize(producer: Any, topic: Any, key: Any, value: Any, headers: Any, closed: bool) -> Any:
    """The serializer step of the serializing producers, as the library runs it."""
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


def _run_sync(steps: Any) -> Any:
    result = None
    try:
        while True:
            result = steps.send(result)
    except StopIteration as done:
        return done.value


async def _run_async(steps: Any) -> Any:
    result = None
    try:
        while True:
            result = steps.send(result)
            if inspect.isawaitable(result):
                result = await result
    except StopIteration as done:
        return done.value


def _shadow_serializing_produce(
    producer: Any, outbox: _Outbox, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """``SerializingProducer.produce`` in shadow: serialize as the library does, send nothing."""
    try:
        topic, key, value, partition, callback, stamp, headers = _serializing_args(*args, **kwargs)
        closed = getattr(producer, "_closed", False)
        key, value = _run_sync(_serialize(producer, topic, key, value, headers, closed))
    except Exception as exc:
        _suppress(str(args[0] if args else kwargs.get("topic", "?")), {"operation": "produce"}, exc)
        raise
    _shadow_produce(
        outbox,
        (topic, value, key),
        {"partition": partition, "on_delivery": callback, "timestamp": stamp, "headers": headers},
    )


class _ProducerProxy(_ProxyHooks, _Transactions, wrapt.ObjectProxy[Any]):
    """``guard(producer)`` for a ``Producer`` or ``SerializingProducer`` instance."""

    def __init__(self, wrapped: Any, outbox: _Outbox) -> None:
        super().__init__(wrapped)
        self._self_outbox = outbox
        self._self_serializing = isinstance(wrapped, _SerializingProducer)

    def produce(self, *args: Any, **kwargs: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return self.__wrapped__.produce(*args, **kwargs)  # type: ignore[no-any-return]
        if self._self_serializing:
            _shadow_serializing_produce(self.__wrapped__, self._self_outbox, args, kwargs)
            return None
        _shadow_produce(self._self_outbox, args, kwargs)
        return None

    def produce_batch(self, *args: Any, **kwargs: Any) -> int:
        if scope_now() is None and not PROCESS.shadow:
            return self.__wrapped__.produce_batch(*args, **kwargs)  # type: ignore[no-any-return]
        return _shadow_produce_batch(self._self_outbox, args, kwargs)

    def poll(self, timeout: float = -1) -> int:
        outbox = self._self_outbox
        if not outbox.reports and scope_now() is None:
            return self.__wrapped__.poll(timeout)  # type: ignore[no-any-return]
        return _poll_serving(outbox, self.__wrapped__.poll, timeout)

    def flush(self, timeout: float = -1) -> int:
        outbox = self._self_outbox
        if not outbox.reports and scope_now() is None:
            return self.__wrapped__.flush(timeout)  # type: ignore[no-any-return]
        return _serve_then(outbox, self.__wrapped__.flush, timeout)  # type: ignore[no-any-return]

    def purge(self, in_queue: bool = True, *args: Any, **kwargs: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return self.__wrapped__.purge(in_queue, *args, **kwargs)  # type: ignore[no-any-return]
        if in_queue:
            self._self_outbox.purge()
        return None

    def close(self) -> bool:
        return _serve_then(self._self_outbox, self.__wrapped__.close)  # type: ignore[no-any-return]

    def __enter__(self) -> _ProducerProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        return _serve_then(self._self_outbox, self.__wrapped__.__exit__, *exc_info)


class _AIOProducerProxy(_ProxyHooks, _AsyncTransactions, wrapt.ObjectProxy[Any]):
    """``guard(producer)`` for an ``AIOProducer`` or ``AsyncSerializingProducer`` instance."""

    def __init__(self, wrapped: Any, outbox: _Outbox) -> None:
        super().__init__(wrapped)
        self._self_outbox = outbox
        self._self_serializing = isinstance(wrapped, _AsyncSerializingProducer)

    async def produce(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        wrapped = self.__wrapped__
        if scope_now() is None and not PROCESS.shadow:
            return await wrapped.produce(*args, **kwargs)  # type: ignore[no-any-return]
        if self._self_serializing:
            topic, key, value, partition, _, stamp, headers = _serializing_args(*args, **kwargs)
            try:
                steps = _serialize(wrapped, topic, key, value, headers, wrapped._is_closed)
                key, value = await _run_async(steps)
            except Exception as exc:
                _suppress(str(topic), {"operation": "produce"}, exc)
                raise
            extra: dict[str, Any] = {}
            if partition != -1:
                extra["partition"] = partition
            if stamp != 0:
                extra["timestamp"] = stamp
            if headers is not None:
                extra["headers"] = headers
            return _shadow_aio_produce(self._self_outbox, topic, value, key, extra)
        return _shadow_aio_produce(self._self_outbox, *_aio_args(*args, **kwargs))

    async def poll(self, *args: Any, **kwargs: Any) -> Any:
        with as_primary():
            return await self.__wrapped__.poll(*args, **kwargs)

    async def flush(self, *args: Any, **kwargs: Any) -> Any:
        with as_primary():
            return await self.__wrapped__.flush(*args, **kwargs)

    async def purge(self, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await self.__wrapped__.purge(*args, **kwargs)
        return None

    async def __aenter__(self) -> _AIOProducerProxy:
        return self


def _aio_args(
    topic: Any, value: Any = None, key: Any = None, *args: Any, **kwargs: Any
) -> tuple[Any, Any, Any, dict[str, Any]]:
    return topic, value, key, kwargs


def guard(producer: Any, *, config: Mapping[str, Any] | None = None) -> Any:
    """Return ``producer`` guarded: in shadow it serializes and validates but sends nothing.

    For a producer created before :func:`install` (or from a class imported before it).
    The result behaves like ``producer`` (``isinstance`` included); keep using it, not
    the original. ``config`` is the configuration the producer was created with: the
    shadow path needs ``message.max.bytes``, ``on_delivery``,
    ``delivery.report.only.error`` and ``transactional.id`` from it (librdkafka does not
    expose them); without it the client defaults apply. A producer that is already
    guarded is returned unchanged.
    """
    if _is_guarded(producer) or isinstance(producer, (_ProducerProxy, _AIOProducerProxy)):
        return producer
    if isinstance(producer, cimpl.Producer):
        return _ProducerProxy(producer, _Outbox(config))
    if _aio is not None and isinstance(producer, _aio.AIOProducer):
        inner = getattr(producer, "_producer", None)
        outbox = _Outbox(config) if config or inner is None else _aio_outbox(producer)
        return _AIOProducerProxy(producer, outbox)
    raise TypeError(
        f"guard() takes a confluent_kafka producer (Producer, SerializingProducer, "
        f"AIOProducer, AsyncSerializingProducer), not {type(producer).__name__}"
    )


# --- Schema Registry: look schemas up, never register them, in shadow ------------------


def _schema_not_registered(subject: str, error: Exception) -> ShadowSideEffectBlocked:
    blocked = ShadowSideEffectBlocked(
        f"registering a new schema under subject {subject!r} in the Schema Registry",
        remedy=(
            "Register the schema from primary traffic or a deployment step first "
            "(shadow traffic only looks schemas up), or serialize with "
            "auto.register.schemas=False"
        ),
    )
    blocked.__cause__ = error
    return blocked


def _guard_schema_registration() -> None:
    try:
        from confluent_kafka.schema_registry import (
            AsyncSchemaRegistryClient,
            SchemaRegistryClient,
        )
        from confluent_kafka.schema_registry.error import SchemaRegistryError
    except ImportError:  # the schemaregistry extra of confluent-kafka is not installed
        return
    register = SchemaRegistryClient.register_schema_full_response
    aregister = AsyncSchemaRegistryClient.register_schema_full_response

    def register_schema_full_response(
        self: Any, subject_name: str, schema: Any, normalize_schemas: bool = False
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return register(self, subject_name, schema, normalize_schemas)
        record_suppression(
            "call", "SchemaRegistryClient.register_schema", {"subject": subject_name}
        )
        try:
            return self.lookup_schema(subject_name, schema, normalize_schemas=normalize_schemas)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise _schema_not_registered(subject_name, exc) from exc
            raise

    async def aregister_schema_full_response(
        self: Any, subject_name: str, schema: Any, normalize_schemas: bool = False
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await aregister(self, subject_name, schema, normalize_schemas)
        record_suppression(
            "call", "AsyncSchemaRegistryClient.register_schema", {"subject": subject_name}
        )
        try:
            return await self.lookup_schema(
                subject_name, schema, normalize_schemas=normalize_schemas
            )
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise _schema_not_registered(subject_name, exc) from exc
            raise

    _patches.setattr(
        SchemaRegistryClient, "register_schema_full_response", register_schema_full_response
    )
    _patches.setattr(
        AsyncSchemaRegistryClient, "register_schema_full_response", aregister_schema_full_response
    )


# --- install() / uninstall() -----------------------------------------------------------


def install(**options: Any) -> None:
    """Swap the guarded producers into ``confluent_kafka`` and guard schema registration.

    Producers created afterwards through ``confluent_kafka.Producer``,
    ``SerializingProducer`` or ``confluent_kafka.aio`` are guarded; for older ones use
    :func:`guard`. Idempotent; :func:`uninstall` restores the originals.
    """
    if options:
        raise TypeError(
            f"the confluent_kafka integration takes no options, got {', '.join(sorted(options))}"
        )
    if _patches:
        return
    try:
        _patches.setattr(confluent_kafka, "Producer", GuardedProducer)
        _patches.setattr(confluent_kafka, "SerializingProducer", GuardedSerializingProducer)
        # Not confluent_kafka.serializing_producer.SerializingProducer: the class's own
        # methods call super(SerializingProducer, self) through that module global.
        if _aio is not None:
            _patches.setattr(_aio, "AIOProducer", GuardedAIOProducer)
            _patches.setattr(_aio, "AsyncSerializingProducer", GuardedAsyncSerializingProducer)
            _patches.setattr(_aio.producer, "AIOProducer", GuardedAIOProducer)
        _guard_schema_registration()
    except BaseException:
        _patches.restore()
        raise
    _warn_unguarded_subclasses()


def _unguarded_subclasses() -> list[type]:
    """Application subclasses of the producer classes defined before :func:`install`.

    They inherit from the original classes, so their instances are never guarded.
    """
    roots: list[type] = [cimpl.Producer]
    if _aio is not None:
        roots.append(_aio.AIOProducer)
    found: list[type] = []
    seen: set[type] = set()
    while roots:
        sub: type
        for sub in roots.pop().__subclasses__():
            if sub in seen:
                continue
            seen.add(sub)
            roots.append(sub)
            own = sub.__module__.partition(".")[0] in ("confluent_kafka", "shadowguard")
            if not own and not getattr(sub, "_sg_guarded", False):
                found.append(sub)
    return found


def _warn_unguarded_subclasses() -> None:
    names = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in _unguarded_subclasses())
    if names:
        # Changing the bases of a class that already has instances is not safe to do
        # behind the application's back: say so, with the way out.
        logger.warning(
            "shadowguard: producer classes defined before install() stay unguarded, "
            "instances created later included: %s. Wrap each instance with "
            "shadowguard.integrations.confluent_kafka.guard(producer), or call "
            "shadowguard.install() before the module defining them is imported",
            ", ".join(names),
        )


def uninstall() -> None:
    """Restore the original producer classes and Schema Registry client."""
    _patches.restore()
