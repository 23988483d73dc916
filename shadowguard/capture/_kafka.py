"""The Kafka sink: each record one message on a topic, keyed by its request id.

Key: the request id (UTF-8), so the primary's and the shadow's record of one request land on
the same partition; value: the encoded record; headers ``shadowguard-schema`` (the record
format's version) and ``shadowguard-label``. The producer is idempotent (no duplicate from
its own retries) with ``acks=all``: delivery is at least once.

Writing never waits for the broker: ``produce()`` only queues in librdkafka's bounded local
queue, and ``poll(0)`` serves delivery reports. When the queue is full a write waits once,
:data:`FULL_WAIT_SECONDS`, for room; what still does not fit is dropped and counted
(``kafka_queue_full``); what the broker did not take within ``message.timeout.ms``
is counted in the delivery report (``kafka_delivery``); a producer that hit a fatal error
is closed and a new one opened at the next write; at close, what is still unsent after
:data:`CLOSE_TIMEOUT_SECONDS` is purged and counted (``kafka_unsent_at_close``).

This is shadowguard's own channel, never suppressed: it builds the client's own
``cimpl.Producer`` (also after ``install()`` swapped a guarded class in) and calls the
client's methods, not the backstop's replacements. A forked child never uses the producer
it inherited (librdkafka's threads do not survive a fork): the writer opens the child a
sink, and so a producer, of its own, and never closes the inherited one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from shadowguard.capture._settings import KAFKA_LINGER_MS, KAFKA_MESSAGE_TIMEOUT_MS, KafkaTarget
from shadowguard.capture._sinks import Encoded
from shadowguard.capture._writer import dropped
from shadowguard.capture_format import SCHEMA_VERSION
from shadowguard.contract import Bursts, missing_extra_error, unwrapped

try:
    from confluent_kafka import KafkaError, KafkaException, cimpl
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise missing_extra_error("confluent_kafka", "kafka") from exc

__all__ = ["CLOSE_TIMEOUT_SECONDS", "FULL_WAIT_SECONDS", "PRODUCER_CONFIG", "KafkaSink"]

logger = logging.getLogger("shadowguard.capture")

#: How long ``close()`` waits for the broker to take what is queued (the writer's own exit
#: wait is 5 s); the rest is purged and counted.
CLOSE_TIMEOUT_SECONDS = 3.0
#: How long a write waits once for room when the local queue is full (a burst faster than
#: the broker), before it drops the rest of its batch.
FULL_WAIT_SECONDS = 0.05
#: The producer's settings; a URL's options (``?linger.ms=5``) take precedence.
PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "message.timeout.ms": KAFKA_MESSAGE_TIMEOUT_MS,
    "linger.ms": KAFKA_LINGER_MS,
    "queue.buffering.max.messages": 100_000,
    "queue.buffering.max.kbytes": 64 * 1024,
    "client.id": "shadowguard-capture",
    # Broker errors reach error_cb (logged once per burst), not librdkafka's own log.
    "log_level": 0,
}
_SCHEMA_HEADER = ("shadowguard-schema", str(SCHEMA_VERSION).encode())
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})


def _client_type() -> type:
    """``confluent_kafka.cimpl.Producer`` itself, also after ``install()`` swapped it."""
    client = unwrapped(cimpl.Producer)
    assert isinstance(client, type)
    return client


def _method(client: type, name: str) -> Callable[..., Any]:
    """The client's own method, also while the guard's backstop replaces it."""
    method: Callable[..., Any] = unwrapped(vars(client)[name])
    return method


class KafkaSink:
    """Produce records to ``target``'s topic; opened on the capture writer thread."""

    def __init__(self, target: KafkaTarget) -> None:
        self.target = target
        self._producer: Any = None
        #: Set by a fatal error (the idempotent producer can go on no more): reopen.
        self._fatal = False
        self._bursts = Bursts()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"<shadowguard.capture.KafkaSink kafka://{self.target.where}>"

    def _open(self) -> Any:
        config = {
            **PRODUCER_CONFIG,
            "bootstrap.servers": self.target.bootstrap,
            **dict(self.target.options),
            "error_cb": self._on_error,
        }
        return _client_type()(config)

    def write(self, batch: Sequence[Encoded]) -> None:
        """Queue ``batch`` for the broker; what the local queue cannot hold is dropped."""
        if self._pid != os.getpid():  # pragma: no cover - the writer opens the child's own
            raise RuntimeError("a Kafka capture sink is not usable in a forked child")
        if self._fatal:
            self._fatal = False
            self.close()  # what the dead producer still holds is counted
        producer = self._producer
        if producer is None:
            producer = self._producer = self._open()
        client = _client_type()
        produce, poll = _method(client, "produce"), _method(client, "poll")
        topic = self.target.topic
        poll(producer, 0)
        waited = False
        for index, encoded in enumerate(batch):
            record = encoded.record
            message = (
                topic,
                encoded.text.encode("utf-8"),
                record["request_id"].encode("utf-8"),
            )
            headers = [_SCHEMA_HEADER, ("shadowguard-label", record["label"].encode())]
            try:
                try:
                    produce(producer, *message, on_delivery=self._on_delivery, headers=headers)
                except BufferError:
                    if waited:
                        raise
                    waited = True
                    poll(producer, FULL_WAIT_SECONDS)
                    produce(producer, *message, on_delivery=self._on_delivery, headers=headers)
            except BufferError:
                dropped(
                    "kafka_queue_full",
                    len(batch) - index,
                    f"the producer's local queue for kafka://{self.target.where} is full "
                    "(the broker is slow or unreachable)",
                )
                break
            except KafkaException as exc:  # this record only: too large, ...
                dropped("kafka_error", 1, f"kafka://{self.target.where} refused it: {exc}")
        poll(producer, 0)

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is None:
            return
        if error.code() in _PURGED:
            dropped(
                "kafka_unsent_at_close",
                1,
                f"not delivered to kafka://{self.target.where} within "
                f"{CLOSE_TIMEOUT_SECONDS} s of closing",
            )
        else:
            dropped("kafka_delivery", 1, f"kafka://{self.target.where} did not take it: {error}")

    def _on_error(self, error: Any) -> None:
        if error.fatal():
            self._fatal = True
        previous = self._bursts.opens("kafka")
        if previous is not None:
            logger.warning(
                "shadowguard: capture sink kafka://%s: %s (further broker errors of this burst "
                "are not logged; undelivered records are counted in shadowguard.capture_dropped)",
                self.target.where,
                error,
            )

    def close(self) -> None:
        """Wait up to :data:`CLOSE_TIMEOUT_SECONDS` for delivery; purge and count the rest."""
        producer, self._producer = self._producer, None
        if producer is None or self._pid != os.getpid():
            return
        client = _client_type()
        if _method(client, "flush")(producer, CLOSE_TIMEOUT_SECONDS) > 0:
            _method(client, "purge")(producer)
            _method(client, "poll")(producer, 0)  # the purged records' reports: counted
        remaining = len(producer)
        if remaining:
            dropped("kafka_unsent_at_close", remaining, "still queued after the purge")
