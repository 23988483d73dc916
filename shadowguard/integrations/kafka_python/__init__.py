"""kafka-python: in shadow, ``KafkaProducer.send`` validates and serializes, and sends nothing.

``install()`` patches methods of ``kafka.KafkaProducer`` and ``kafka.KafkaConsumer``
(pure Python classes), so clients created before it are covered too, and there is no
per-object ``guard()``. The primary path pays one ContextVar read and one flag.

In shadow, ``send()`` runs the client's checks, serializers and ``max_request_size``,
raises what the client raises, records ``Suppression(kind="kafka.produce")`` (target the
topic, ``detail["key"]`` the serialized key) and returns a resolved
``FutureRecordMetadata`` (``offset=-1``); nothing reaches the accumulator. Transaction
calls are recorded no-ops (``kafka.transaction``). Consumers created in shadow join the
shadow group (``group_id`` plus ``SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX``); from shadow, a
consumer of a primary group neither reads nor commits.

The package, in the order a shadow call meets it:

- ``_producer``: the ``send`` hook and the shadow send, as the client checks it.
- ``_transactions``: transaction calls as recorded no-ops; a skipped init owed to the primary.
- ``_consumer``: the shadow group rule at ``KafkaConsumer.__init__``; the backstop on its
  methods for consumers of a primary group.
"""

from __future__ import annotations

from typing import Any

from shadowguard.contract import Patches, class_method, get_settings, missing_extra_error

try:
    from kafka.consumer.group import KafkaConsumer
    from kafka.producer.kafka import KafkaProducer
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise missing_extra_error("kafka", "kafka-python") from exc

from shadowguard.integrations.kafka_python import _consumer, _transactions
from shadowguard.integrations.kafka_python._producer import send_hook

__all__ = ["install", "uninstall"]

_patches = Patches("kafka_python")


def _apply() -> None:
    get_settings()  # a malformed shadow group suffix fails here, at start-up
    _patches.setattr(KafkaProducer, "send", send_hook(_own(KafkaProducer, "send")))
    init = _own(KafkaProducer, "init_transactions")
    for name in _transactions.TRANSACTION_METHODS:
        hook = _transactions.transaction_hook(name, _own(KafkaProducer, name), init)
        _patches.setattr(KafkaProducer, name, hook)
    consumer = KafkaConsumer
    _patches.setattr(consumer, "__init__", _consumer.init_hook(_own(consumer, "__init__")))
    for name in _consumer.REFUSED:
        _patches.setattr(consumer, name, _consumer.refusing_hook(name, _own(consumer, name)))
    for name in _consumer.COMMITS:
        _patches.setattr(consumer, name, _consumer.commit_hook(name, _own(consumer, name)))


def _own(cls: type, name: str) -> Any:
    return class_method(cls, name, "kafka-python", "kafka-python>=2.3")


def install(**options: Any) -> None:
    """Guard every ``KafkaProducer`` and ``KafkaConsumer``, also those created before; idempotent.

    Takes no options; raises ``ConfigError`` for a malformed environment. :func:`uninstall`
    restores the classes.
    """
    _patches.install(_apply, options)


def uninstall() -> None:
    """Restore kafka-python's classes."""
    _patches.uninstall()
