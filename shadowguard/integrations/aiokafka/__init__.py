"""aiokafka: in shadow, ``AIOKafkaProducer.send`` validates and serializes, and sends nothing.

``install()`` patches methods of ``aiokafka.AIOKafkaProducer`` and
``aiokafka.AIOKafkaConsumer``, so clients created before it are covered too, and there is
no per-object ``guard()``. The primary path pays one ContextVar read and one flag (and,
the methods being coroutines, one coroutine frame).

In shadow, ``send()`` (and ``send_and_wait()``, which calls it) runs the client's checks,
serializers and ``max_request_size``, raises what the client raises, records
``Suppression(kind="kafka.produce")`` (target the topic, ``detail["key"]`` the serialized
key) and returns a resolved future of a ``RecordMetadata`` (``offset=-1``);
``send_batch()`` does the same for a batch. Transaction calls are recorded no-ops
(``kafka.transaction``). Consumers created in shadow join the shadow group (``group_id``
plus ``SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX``); from shadow, a consumer of a primary group
neither joins, reads nor commits.

The package, in the order a shadow call meets it:

- ``_producer``: the ``send`` and ``send_batch`` hooks, as the client checks them.
- ``_transactions``: transaction calls as recorded no-ops.
- ``_consumer``: the shadow group rule at ``AIOKafkaConsumer.__init__``; the backstop on its
  methods for consumers of a primary group.
"""

from __future__ import annotations

from typing import Any

from shadowguard.contract import Patches, class_method, get_settings, missing_extra_error

try:
    from aiokafka.consumer.consumer import AIOKafkaConsumer
    from aiokafka.producer.producer import AIOKafkaProducer
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise missing_extra_error("aiokafka", "aiokafka") from exc

from shadowguard.integrations.aiokafka import _consumer, _producer, _transactions

__all__ = ["install", "uninstall"]

_patches = Patches("aiokafka")


def _apply() -> None:
    get_settings()  # a malformed shadow group suffix fails here, at start-up
    producer, consumer = AIOKafkaProducer, AIOKafkaConsumer
    _patches.setattr(producer, "send", _producer.send_hook(_own(producer, "send")))
    batch = _producer.send_batch_hook(_own(producer, "send_batch"))
    _patches.setattr(producer, "send_batch", batch)
    for name in _transactions.TRANSACTION_METHODS:
        transaction = _transactions.transaction_hook(name, _own(producer, name))
        _patches.setattr(producer, name, transaction)
    _patches.setattr(consumer, "__init__", _consumer.init_hook(_own(consumer, "__init__")))
    for name in _consumer.REFUSED:
        _patches.setattr(consumer, name, _consumer.refusing_hook(name, _own(consumer, name)))
    for name in _consumer.REFUSED_ASYNC:
        refusing = _consumer.refusing_async_hook(name, _own(consumer, name))
        _patches.setattr(consumer, name, refusing)
    _patches.setattr(consumer, "commit", _consumer.commit_hook(_own(consumer, "commit")))


def _own(cls: type, name: str) -> Any:
    return class_method(cls, name, "aiokafka", "aiokafka>=0.11")


def install(**options: Any) -> None:
    """Guard every ``AIOKafkaProducer`` and ``AIOKafkaConsumer``, also those created before.

    Takes no options; raises ``ConfigError`` for a malformed environment. Idempotent;
    :func:`uninstall` restores the classes.
    """
    _patches.install(_apply, options)


def uninstall() -> None:
    """Restore aiokafka's classes."""
    _patches.uninstall()
