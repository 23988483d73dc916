"""What a guard records: the :class:`Suppression` value and the kinds it may have.

A leaf module: telemetry, the context and every sink read it; it reads nothing of ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

__all__ = ["ACTIONS", "KINDS", "Action", "Kind", "Suppression"]

EMPTY: Mapping[str, Any] = MappingProxyType({})


class Kind:
    """The kinds of :class:`Suppression`, one per channel, as plain strings.

    Every ``detail`` has ``operation`` (the guarded method, e.g. ``"commit"``,
    ``"produce"``, ``"sendmail"``) and ``action`` (one of :class:`Action`). Per kind:

    - ``db.commit``: ``statements`` (tuple of SQL texts), ``tables``, ``suppressed_by``
      (``"rollback"``, ``"savepoint"``, ``"error"``, ...); from Django also ``database``
      (the alias), ``atomic``, ``autocommit`` and ``vendor``.
    - ``kafka.produce``: ``partition``, ``key_bytes``, ``value_bytes``; from kafka-python and
      aiokafka also ``key`` (the serialized key as text, or None); an aiokafka ``send_batch``
      has ``partition``, ``records`` and ``batch_bytes``.
    - ``kafka.transaction``: ``transactional_id``.
    - ``kafka.offsets``: ``offsets`` (``(topic, partition, offset)`` triples, empty when
      the consumer's current positions were meant), ``consumer_class``.
    - ``kafka.consume``: ``consumer_class`` (always a refusal: reading a primary group).
    - ``http.request``: ``client``, ``method``, ``status`` of the stub, ``rule``.
    - ``grpc.call``: ``method`` (``"/package.Service/Method"``), ``call`` (``"unary_unary"``,
      ``"unary_stream"``, ``"stream_unary"``, ``"stream_stream"``), ``rule`` and ``code`` of
      the stub that answered it.
    - ``mail.send``: ``bytes``, ``recipients``, ``refused``, ``from``, ``via``.
    - ``call``: ``mode`` (``"returns"`` or ``"instead"``).
    - ``redis.command``: ``operation`` is the Redis command (``"SET"``, ``"XGROUP CREATE"``);
      ``key`` (its first argument, or None), ``reason`` (why it is a side effect:
      ``"write"``, ``"admin"``, ``"pubsub"``, ``"script"``, ``"blocking"``, ``"unknown"``),
      ``table`` (``"server"``: classified from the server's ``COMMAND`` table, or
      ``"builtin"``), ``via`` (``"command"``, ``"pipeline"``, ``"transaction"``) and, when
      suppressed, ``reply`` (what the caller got instead) or ``instead`` (the read sent in
      its place, ``"GET"``).
    - ``celery.task``: a Celery task message not sent; the target is the task's name.
      ``task_id``, ``args`` (one ``"***"`` per positional argument), ``kwargs`` (each name
      with ``"***"``), ``exchange``, ``routing_key``, ``broker`` (URL without password),
      ``content_type`` and ``bytes`` (the body as serialized and compressed).
    - ``celery.message``: any other kombu message not sent (Celery events, remote control,
      RPC results); the target is ``exchange/routing_key``. ``exchange``, ``routing_key``,
      ``broker``, ``content_type``, ``bytes``.
    - ``celery.consume``: always a refusal: a worker (or ``purge()``) in shadow would take
      tasks off the primary's queues. ``queues`` (the names refused).
    - ``aws.call``: ``operation`` is the API operation (``"PutObject"``, ``"SendMessage"``);
      ``service`` (as ``boto3.client()`` names it), ``region``, ``endpoint`` (redacted),
      ``reason`` (``"write"``, or ``"consume"`` for a read that takes work from other
      consumers, answered empty), ``why`` (the rule that decided). ``target`` is
      ``service:resource`` (the bucket, queue, topic or table) or the service.
    - ``amqp.publish``: ``exchange``, ``routing_key``, ``body_bytes``, ``mandatory``,
      ``confirm`` (publisher confirms were on: the caller got a successful confirm),
      ``client`` (``"pika"`` or ``"aiormq"``).
    - ``amqp.consume``: ``queue``, ``client`` (always a refusal: a queue not the shadow's own).
    - ``amqp.ack``: ``delivery_tag``, ``multiple``, ``requeue`` (None for an ack),
      ``client``; ``operation`` is ``basic_ack``, ``basic_nack`` or ``basic_reject``.
    - ``amqp.admin``: ``queue`` or ``exchange``, ``client``; ``operation`` is
      ``queue_purge``, ``queue_delete``, ``exchange_delete``, ``queue_bind``,
      ``queue_unbind``, ``exchange_bind`` or ``exchange_unbind`` (answered from a passive
      declare, not sent).
    """

    DB_COMMIT: Final = "db.commit"
    KAFKA_PRODUCE: Final = "kafka.produce"
    KAFKA_TRANSACTION: Final = "kafka.transaction"
    KAFKA_OFFSETS: Final = "kafka.offsets"
    KAFKA_CONSUME: Final = "kafka.consume"
    HTTP_REQUEST: Final = "http.request"
    MAIL_SEND: Final = "mail.send"
    GRPC_CALL: Final = "grpc.call"
    CALL: Final = "call"
    REDIS_COMMAND: Final = "redis.command"
    CELERY_TASK: Final = "celery.task"
    CELERY_MESSAGE: Final = "celery.message"
    CELERY_CONSUME: Final = "celery.consume"
    AWS_CALL: Final = "aws.call"
    AMQP_PUBLISH: Final = "amqp.publish"
    AMQP_CONSUME: Final = "amqp.consume"
    AMQP_ACK: Final = "amqp.ack"
    AMQP_ADMIN: Final = "amqp.admin"


class Action:
    """What the guard did instead of the side effect (``detail["action"]``).

    ``suppressed``: validated and dropped (or rolled back); ``stubbed``: answered with a
    stand-in (an HTTP stub, a ``side_effect`` return value); ``blocked``: refused with
    :class:`~shadowguard.ShadowSideEffectBlocked` before anything happened. Refusals are
    recorded like any other suppression, so operators can count them.
    """

    SUPPRESSED: Final = "suppressed"
    STUBBED: Final = "stubbed"
    BLOCKED: Final = "blocked"


KINDS: frozenset[str] = frozenset(
    v for k, v in vars(Kind).items() if k.isupper() and isinstance(v, str)
)
ACTIONS: frozenset[str] = frozenset(
    v for k, v in vars(Action).items() if k.isupper() and isinstance(v, str)
)


@dataclass(frozen=True)
class Suppression:
    """One side effect that shadowguard did not let happen.

    ``kind`` is the channel (a :class:`Kind`; applications with channels of their own may
    use other names); ``target`` a printable name without secrets (engine URL without
    password, topic, URL, function); ``detail`` a read-only mapping of what was suppressed,
    with at least ``operation`` and ``action`` when a guard recorded it; ``error`` the
    error the operation hit (a validation error it would have raised on the primary too,
    or the :class:`~shadowguard.ShadowSideEffectBlocked` of a refusal).
    """

    kind: str
    target: str
    detail: Mapping[str, Any] = field(default_factory=lambda: EMPTY, hash=False)
    error: BaseException | None = field(default=None, hash=False)

    @property
    def blocked(self) -> bool:
        """Was the side effect refused (rather than suppressed or stubbed)?"""
        return self.detail.get("action") == Action.BLOCKED
