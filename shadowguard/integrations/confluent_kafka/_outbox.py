"""A producer's outbox: the delivery reports its shadow messages are owed.

Shadow messages never reach librdkafka, so the broker never reports on them. Each guarded
producer keeps the reports it owes in an :class:`Outbox`, with the limits from its
configuration, and serves them at its next ``poll()``, ``flush()`` or ``close()``, each
callback in a copy of the context that produced the message (so it runs as shadow).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaError, Message

from shadowguard.contract import PROCESS, as_primary, scope_now
from shadowguard.integrations.confluent_kafka._client import DEFAULT_MAX_BYTES, legal_topic

__all__ = ["Outbox", "delivery_message", "poll_serving", "serve_then"]

logger = logging.getLogger("shadowguard")

_Report = tuple[contextvars.Context, Callable[..., Any], "KafkaError | None", Message]


class Outbox:
    """One producer's shadow side: its limits and the delivery reports it owes."""

    __slots__ = (
        "default_callback",
        "init_lock",
        "init_owed",
        "initialised",
        "max_bytes",
        "only_errors",
        "reports",
        "transactional_id",
    )

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        settings = {str(k).replace("_", "."): v for k, v in (config or {}).items()}
        try:
            self.max_bytes = int(settings.get("message.max.bytes", DEFAULT_MAX_BYTES))
        except (TypeError, ValueError):  # the client itself rejects it, with its own error
            self.max_bytes = DEFAULT_MAX_BYTES
        callback = settings.get("on.delivery")
        self.default_callback: Callable[..., Any] | None = callback if callable(callback) else None
        self.only_errors = str(settings.get("delivery.report.only.error", "false")).lower() in {
            "true",
            "1",
        }
        self.transactional_id: str | None = settings.get("transactional.id")
        self.reports: deque[_Report] = deque()
        #: ``init_transactions()``'s arguments from a shadow call that stood in for the
        #: primary's first one (see :mod:`._transactions`); None when nothing is owed.
        self.init_owed: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self.initialised = False
        self.init_lock = threading.Lock()

    @classmethod
    def of_producer(cls, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Outbox:
        """The outbox for a producer created with ``Producer(*args, **kwargs)``."""
        config: dict[str, Any] = {}
        if args and isinstance(args[0], Mapping):
            config.update(args[0])
        config.update(kwargs)
        return cls(config)

    def owe(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        timestamp: int,
        callback: Callable[..., Any] | None,
    ) -> KafkaError | None:
        """Queue the delivery report the broker would cause, and return its error."""
        error = None if legal_topic(topic) else KafkaError(KafkaError.TOPIC_EXCEPTION)
        callback = callback or self.default_callback
        if callback is None or (error is None and self.only_errors):
            return error
        message = delivery_message(topic, key, value, partition, timestamp, error)
        self.reports.append((contextvars.copy_context(), callback, error, message))
        return error

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


def delivery_message(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    partition: int,
    timestamp: int,
    error: KafkaError | None,
) -> Message:
    """The message a delivery report carries, built as the client would fill it."""
    fields: dict[str, Any] = {"topic": topic, "key": key, "value": value, "latency": 0.0}
    if error is not None:
        fields.update(error=error, timestamp=(confluent_kafka.TIMESTAMP_NOT_AVAILABLE, -1))
        return Message(**fields)
    stamp = timestamp or int(time.time() * 1000)
    fields["timestamp"] = (confluent_kafka.TIMESTAMP_CREATE_TIME, stamp)
    if partition >= 0:
        fields["partition"] = partition
    return Message(**fields)


def poll_serving(outbox: Outbox, poll: Callable[[float], int], timeout: float) -> int:
    """``poll()`` when shadow reports are owed or the caller is in shadow."""
    if scope_now() is None and not PROCESS.shadow:
        # A primary caller: shadow reports are served but change neither its
        # timeout nor its count.
        outbox.serve()
        return poll(timeout)
    served = outbox.serve()
    with as_primary():
        return served + poll(0 if served else timeout)


def serve_then(outbox: Outbox, call: Callable[..., Any], *args: Any) -> Any:
    """Serve the shadow reports owed, then run ``call`` as primary work (flush, close)."""
    outbox.serve()
    with as_primary():
        return call(*args)
