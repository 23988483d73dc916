"""confluent-kafka: in shadow, serialize and validate every message, send none.

``install()`` swaps guarded subclasses into ``confluent_kafka`` (``Producer``,
``SerializingProducer``, ``cimpl.Producer``) and ``confluent_kafka.aio`` (``AIOProducer``,
``AsyncSerializingProducer``), and keeps Schema Registry serializers from registering
schemas in shadow. ``guard(producer)`` covers a producer created before ``install()``;
any producer left unguarded refuses to send in shadow (``ShadowSideEffectBlocked``).

In shadow, ``produce()`` and ``produce_batch()`` run the serializers and the checks the
client and the broker would apply, raise what the client raises, record a
``Suppression(kind="kafka.produce")`` and queue a delivery report for the next
``poll()``/``flush()`` of the producer; nothing reaches librdkafka. Transactions
(recorded as ``kafka.transaction``) and ``purge()`` become no-ops in shadow, so a shadow
request can neither fence, commit, abort nor purge the primary's work on a shared producer.

Consumers: ``install()`` also swaps in ``Consumer`` (``cimpl.Consumer``) and
``DeserializingConsumer``. One created in shadow (a ``SHADOW_MODE`` worker) joins a group
of its own, ``group.id`` plus ``-shadow`` (``SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX``), so it
reads every message without taking any from the primary. From shadow, a consumer of a
primary group refuses to read (``ShadowSideEffectBlocked``) and its commits are suppressed.

The package, in the order a shadow ``produce()`` meets it:

- ``_backstop``: every producer the guard does not wrap refuses in shadow.
- ``_swap``: a swapped-in class answers ``isinstance`` for the class it replaces; which
  application subclasses were defined before ``install()``.
- ``_sync``: ``GuardedProducer``, ``GuardedSerializingProducer`` and the ``guard()``
  proxy; each method's first line is the pass-through to the client.
- ``_asyncio``: the same for the asyncio producers of ``confluent_kafka.aio``.
- ``_shadow``: the shadow produce paths, in call order: check, owe the report, record.
- ``_serializing``: the serializer step of the serializing producers, as the library runs it.
- ``_client``: librdkafka's client-side checks, with the client's exceptions.
- ``_outbox``: the delivery reports a producer owes, served at ``poll()``/``flush()``/``close()``.
- ``_transactions``: transaction calls as recorded no-ops.
- ``_schema_registry``: look schemas up, never register them.
- ``_consumer``: the shadow group rule, applied when a consumer is created in shadow.
- ``_consumer_backstop``: from shadow, a consumer of a primary group neither reads nor commits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from shadowguard.contract import PROCESS, Patches, get_settings, missing_extra_error

try:
    import confluent_kafka
    from confluent_kafka import cimpl
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise missing_extra_error("confluent_kafka", "kafka") from exc

from shadowguard.integrations.confluent_kafka import (
    _asyncio,
    _backstop,
    _consumer_backstop,
    _swap,
    _sync,
)
from shadowguard.integrations.confluent_kafka._asyncio import (
    GuardedAIOProducer,
    GuardedAsyncSerializingProducer,
)
from shadowguard.integrations.confluent_kafka._consumer import (
    GuardedConsumer,
    GuardedDeserializingConsumer,
)
from shadowguard.integrations.confluent_kafka._outbox import Outbox
from shadowguard.integrations.confluent_kafka._schema_registry import guard_schema_registration
from shadowguard.integrations.confluent_kafka._sync import (
    GuardedProducer,
    GuardedSerializingProducer,
)

__all__ = [
    "GuardedAIOProducer",
    "GuardedAsyncSerializingProducer",
    "GuardedConsumer",
    "GuardedDeserializingConsumer",
    "GuardedProducer",
    "GuardedSerializingProducer",
    "guard",
    "install",
    "uninstall",
]

logger = logging.getLogger("shadowguard")
_patches = Patches("confluent_kafka")
#: The client classes an application may subclass; install() swaps in guarded ones.
_CLIENT_CLASSES: tuple[type, ...] = (cimpl.Producer,) + (
    (_asyncio.AIOProducer,) if _asyncio.AIOProducer else ()
)
#: The same for consumers: only a SHADOW_MODE process creates them differently.
_CONSUMER_CLASSES: tuple[type, ...] = (cimpl.Consumer,)


def install(**options: Any) -> None:
    """Swap the guarded producers and consumers into ``confluent_kafka``; guard schema registration.

    Producers created afterwards through ``confluent_kafka.Producer``,
    ``SerializingProducer`` or ``confluent_kafka.aio`` are guarded; for older ones use
    :func:`guard`. Consumers created afterwards in shadow join the shadow's own group.
    Takes no options; raises ``ConfigError`` for a malformed environment. Idempotent;
    :func:`uninstall` restores the originals.
    """
    _patches.install(_apply, options)


def _apply() -> None:
    get_settings()  # a malformed shadow group suffix fails here, at start-up
    _patches.setattr(confluent_kafka, "Producer", GuardedProducer)
    _patches.setattr(cimpl, "Producer", GuardedProducer)
    _patches.setattr(confluent_kafka, "SerializingProducer", GuardedSerializingProducer)
    # Not confluent_kafka.serializing_producer.SerializingProducer: the class's own
    # methods call super(SerializingProducer, self) through that module global.
    if GuardedAIOProducer is not None:
        from confluent_kafka import aio

        _patches.setattr(aio, "AIOProducer", GuardedAIOProducer)
        if GuardedAsyncSerializingProducer is not None:
            _patches.setattr(aio, "AsyncSerializingProducer", GuardedAsyncSerializingProducer)
        _patches.setattr(aio.producer, "AIOProducer", GuardedAIOProducer)
        _backstop.guard_class_in_place(_patches, _asyncio.AIOProducer)
    _backstop.guard_client_type(_patches)
    _apply_consumers()
    guard_schema_registration(_patches)
    _warn_unguarded_subclasses()


def _apply_consumers() -> None:
    _patches.setattr(confluent_kafka, "Consumer", GuardedConsumer)
    _patches.setattr(cimpl, "Consumer", GuardedConsumer)
    # Not the deserializing_consumer module's global: its methods call super() through it.
    _patches.setattr(confluent_kafka, "DeserializingConsumer", GuardedDeserializingConsumer)
    _consumer_backstop.guard_consumer_type(_patches)
    try:
        from confluent_kafka.aio import AIOConsumer
    except ImportError:  # pragma: no cover - confluent-kafka before the asyncio consumer
        return
    _consumer_backstop.guard_aio_consumer(_patches, AIOConsumer)


def _warn_unguarded_subclasses() -> None:
    roots = _CLIENT_CLASSES + (_CONSUMER_CLASSES if PROCESS.shadow else ())
    classes = _swap.unguarded_subclasses(roots)
    names = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in classes)
    if names:
        # Changing the bases of a class that already has instances is not safe to do
        # behind the application's back: say so, with the way out.
        logger.warning(
            "shadowguard: client classes defined before install() stay unguarded, "
            "instances created later included: %s. In shadow such producers refuse to "
            "send, and such consumers keep the primary's consumer group and refuse to "
            "consume. Call shadowguard.install() before the module defining them is "
            "imported, or wrap each producer with "
            "shadowguard.integrations.confluent_kafka.guard(producer)",
            ", ".join(names),
        )


def uninstall() -> None:
    """Restore the original producer classes and Schema Registry clients."""
    _patches.uninstall()


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
    if _swap.is_guarded(producer) or isinstance(producer, _sync.GuardProxy):
        return producer
    if isinstance(producer, cimpl.Producer):
        return _sync.ProducerProxy(producer, Outbox(config))
    if _asyncio.AIOProducer is not None and isinstance(producer, _asyncio.AIOProducer):
        return _asyncio.AIOProducerProxy(
            producer, Outbox(config) if config else _asyncio.outbox_of(producer)
        )
    raise TypeError(
        f"guard() takes a confluent_kafka producer (Producer, SerializingProducer, "
        f"AIOProducer, AsyncSerializingProducer), not {type(producer).__name__}"
    )
