"""The synchronous producers guarded: the subclasses ``install()`` swaps in, and ``guard()``'s proxy.

Each method's first line is the cheap pass-through to the client's own method; in shadow
it hands over to the shadow produce paths (:mod:`._shadow`), the producer's outbox
(:mod:`._outbox`) or the transaction no-ops (:mod:`._transactions`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import wrapt
from confluent_kafka import SerializingProducer, cimpl

from shadowguard.contract import PROCESS, scope_now
from shadowguard.integrations.confluent_kafka._client import OMITTED
from shadowguard.integrations.confluent_kafka._outbox import Outbox, poll_serving, serve_then
from shadowguard.integrations.confluent_kafka._shadow import (
    shadow_produce,
    shadow_produce_batch,
    shadow_produce_call,
    shadow_serializing_produce,
)
from shadowguard.integrations.confluent_kafka._swap import SwappedIn
from shadowguard.integrations.confluent_kafka._transactions import (
    with_transactions,
    wrapped_producer,
)

__all__ = ["GuardProxy", "GuardedProducer", "GuardedSerializingProducer", "ProducerProxy"]

_client_produce: Callable[..., None] = cimpl.Producer.produce
_client_produce_batch: Callable[..., int] = cimpl.Producer.produce_batch
_client_poll: Callable[..., int] = cimpl.Producer.poll
_client_flush: Callable[..., int] = cimpl.Producer.flush
_client_purge: Callable[..., None] = cimpl.Producer.purge
_serializing_produce: Callable[..., None] = SerializingProducer.produce
# The client's defaults, compared by identity: a timestamp of 0.0 or False, or a partition
# of -1.0, must reach the client as given (it refuses them).
_NO_TIMESTAMP = 0
_UNASSIGNED = -1


def _client_methods(producer: Any) -> Any:
    """Where a guarded class finds the client's own methods: the class after the guard."""
    return super(_SyncGuard, producer)


@with_transactions(_client_methods)
class _SyncGuard:
    """Everything but ``produce()`` of the guarded synchronous producers."""

    _shadow_outbox: Outbox

    def produce_batch(self, *args: Any, **kwargs: Any) -> int:
        if scope_now() is None and not PROCESS.shadow:
            return _client_produce_batch(self, *args, **kwargs)
        return shadow_produce_batch(self._shadow_outbox, args, kwargs)

    def poll(self, timeout: float = -1) -> int:
        if scope_now() is None and not PROCESS.shadow and not self._shadow_outbox.reports:
            return _client_poll(self, timeout)
        return poll_serving(self._shadow_outbox, functools.partial(_client_poll, self), timeout)

    def flush(self, timeout: float = -1) -> int:
        if scope_now() is None and not PROCESS.shadow and not self._shadow_outbox.reports:
            return _client_flush(self, timeout)
        return serve_then(self._shadow_outbox, _client_flush, self, timeout)  # type: ignore[no-any-return]

    def purge(self, in_queue: bool = True, *args: Any, **kwargs: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return _client_purge(self, in_queue, *args, **kwargs)
        if in_queue:
            self._shadow_outbox.purge()
        return None

    def close(self) -> bool:
        return serve_then(self._shadow_outbox, super().close)  # type: ignore[misc,no-any-return]

    def __exit__(self, *exc_info: Any) -> Any:
        return serve_then(self._shadow_outbox, super().__exit__, *exc_info)  # type: ignore[misc]


class GuardedProducer(_SyncGuard, cimpl.Producer, metaclass=SwappedIn, replaces=cimpl.Producer):
    """``confluent_kafka.Producer`` that sends nothing in shadow (see the package doc)."""

    # A slot, not the instance dict: CPython looks ``producer.produce`` up as fast as the
    # client's own method only while the instance has no dict.
    __slots__ = ("_shadow_outbox",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._shadow_outbox = Outbox.of_producer(args, kwargs)
        super().__init__(*args, **kwargs)

    # The client's eight parameters, named, and no *args/**kwargs: re-packing a call would
    # cost more than the whole guard. Arguments left at the client's defaults are not
    # passed on: the client parses each one it is given.
    def produce(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int = _UNASSIGNED,
        callback: Any = OMITTED,
        on_delivery: Callable[..., Any] | None = None,
        timestamp: int = _NO_TIMESTAMP,
        headers: Any = None,
    ) -> None:
        if scope_now() is None and not PROCESS.shadow:
            if callback is OMITTED:
                if on_delivery is None and timestamp is _NO_TIMESTAMP and headers is None:
                    if key is None and partition is _UNASSIGNED:
                        return _client_produce(self, topic, value)
                    return _client_produce(self, topic, value, key, partition)
                # A callback given, even as None, makes the client ignore on_delivery:
                # an omitted one is not passed on.
                return _client_produce(
                    self,
                    topic,
                    value,
                    key,
                    partition,
                    on_delivery=on_delivery,
                    timestamp=timestamp,
                    headers=headers,
                )
            return _client_produce(
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
        delivery_callback = on_delivery if callback is OMITTED else callback
        shadow_produce(
            self._shadow_outbox, topic, value, key, partition, delivery_callback, timestamp, headers
        )
        return None


class GuardedSerializingProducer(
    _SyncGuard, SerializingProducer, metaclass=SwappedIn, replaces=SerializingProducer
):
    """``confluent_kafka.SerializingProducer`` that serializes but sends nothing in shadow."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._shadow_outbox = Outbox(conf)
        super().__init__(conf)

    # SerializingProducer's own signature, spelled out: re-packing *args/**kwargs would add
    # about a tenth to the primary's produce().
    def produce(  # type: ignore[override]
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
        given = (topic, key, value, partition, on_delivery, timestamp, headers)
        shadow_serializing_produce(self, self._shadow_outbox, given, {})
        return None


if TYPE_CHECKING:
    _ObjectProxy = wrapt.ObjectProxy[Any]
else:  # wrapt before 2.0 has no subscriptable ObjectProxy
    _ObjectProxy = wrapt.ObjectProxy


class GuardProxy(_ObjectProxy):
    """A ``guard()`` proxy: the wrapped producer, and the outbox of its shadow messages."""

    def __init__(self, wrapped: Any, outbox: Outbox) -> None:
        super().__init__(wrapped)
        self._self_outbox = outbox

    @property
    def _shadow_outbox(self) -> Outbox:
        return self._self_outbox


@with_transactions(wrapped_producer)
class ProducerProxy(GuardProxy):
    """``guard(producer)`` for a ``Producer`` or ``SerializingProducer`` instance."""

    def __init__(self, wrapped: Any, outbox: Outbox) -> None:
        super().__init__(wrapped, outbox)
        self._self_serializing = isinstance(wrapped, SerializingProducer)

    def produce(self, *args: Any, **kwargs: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return self.__wrapped__.produce(*args, **kwargs)  # type: ignore[no-any-return]
        if self._self_serializing:
            shadow_serializing_produce(self.__wrapped__, self._self_outbox, args, kwargs)
        else:
            shadow_produce_call(self._self_outbox, args, kwargs)
        return None

    def produce_batch(self, *args: Any, **kwargs: Any) -> int:
        if scope_now() is None and not PROCESS.shadow:
            return self.__wrapped__.produce_batch(*args, **kwargs)  # type: ignore[no-any-return]
        return shadow_produce_batch(self._self_outbox, args, kwargs)

    def poll(self, timeout: float = -1) -> int:
        if scope_now() is None and not PROCESS.shadow and not self._self_outbox.reports:
            return self.__wrapped__.poll(timeout)  # type: ignore[no-any-return]
        return poll_serving(self._self_outbox, self.__wrapped__.poll, timeout)

    def flush(self, timeout: float = -1) -> int:
        if scope_now() is None and not PROCESS.shadow and not self._self_outbox.reports:
            return self.__wrapped__.flush(timeout)  # type: ignore[no-any-return]
        return serve_then(self._self_outbox, self.__wrapped__.flush, timeout)  # type: ignore[no-any-return]

    def purge(self, in_queue: bool = True, *args: Any, **kwargs: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return self.__wrapped__.purge(in_queue, *args, **kwargs)  # type: ignore[no-any-return]
        if in_queue:
            self._self_outbox.purge()
        return None

    def close(self) -> bool:
        return serve_then(self._self_outbox, self.__wrapped__.close)  # type: ignore[no-any-return]

    def __enter__(self) -> ProducerProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        return serve_then(self._self_outbox, self.__wrapped__.__exit__, *exc_info)
