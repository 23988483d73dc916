"""pika: in shadow, publishes are framed and dropped; the primary's queues are left alone.

``install()`` patches ``pika.channel.Channel`` (the channel under every pika connection type:
``BlockingConnection``, ``SelectConnection``, ``AsyncioConnection``, ...) and
``pika.BlockingChannel.basic_publish`` and ``basic_consume``, on the classes, so channels and connections created
before it are covered too (there is no per-channel ``guard()``). The primary path pays one
ContextVar read and one flag.

In shadow, ``basic_publish`` encodes and frames the message (a wrong type fails as it does on
the primary), records ``Suppression(kind="amqp.publish")`` naming the exchange and routing key
and sends nothing; a ``BlockingChannel`` in confirm mode returns as for a confirmed publish.
A shadow consumer may read only the shadow's own queues (a name ending in ``-shadow``, one
named in ``shadow_queues``, or a server-named ``amq.gen-`` queue): ``basic_consume`` and
``basic_get`` on any other queue raise ``ShadowSideEffectBlocked``. Acks, nacks and rejects
reach the broker only on channels whose consumers are all the shadow's own; purges, deletes
and (un)bindings of the primary's queues and exchanges are answered and not sent. A consumer
started in shadow handles each message in a shadow scope of its own.

The package, in call order:

- ``_blocking``: ``BlockingChannel.basic_publish``, which a confirm would otherwise block,
  and ``basic_consume``, whose handler runs wherever ``start_consuming()`` is called.
- ``_channel``: the hooks on ``pika.channel.Channel``.

The mirror rule and the ack ledger are shared with the aio-pika guard (``shadowguard._amqp``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shadowguard.contract import Patches, class_method, missing_extra_error

try:
    import pika
    import pika.channel
    from pika.adapters.blocking_connection import BlockingChannel
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise missing_extra_error("pika", "pika") from exc

from shadowguard._amqp import DEFAULT_SUFFIX, hook_channel, mirror_rule
from shadowguard.integrations.pika._blocking import consume_hook, publish_hook
from shadowguard.integrations.pika._channel import HOOKS, LEDGER

__all__ = ["install", "uninstall"]

_patches = Patches("pika")


def install(**options: Any) -> None:
    """Guard every pika channel, those created before ``install()`` too; idempotent.

    ``shadow_suffix`` (default ``"-shadow"``): a queue or exchange whose name ends with it is
    the shadow's own (its mirror queue), so a shadow worker consumes, acks, binds, purges
    and deletes it. ``shadow_queues``: more queue names that are the shadow's own.
    """
    _patches.install(_apply, options)


def uninstall() -> None:
    """Restore pika's channel classes and forget which channels consumed in shadow."""
    _patches.uninstall(after=LEDGER.forget)


def _apply(*, shadow_suffix: str = DEFAULT_SUFFIX, shadow_queues: Iterable[str] = ()) -> None:
    rule = mirror_rule("pika", shadow_suffix, shadow_queues)
    hook_channel(_patches, pika.channel.Channel, HOOKS, _original, rule)
    publish = _original(BlockingChannel, "basic_publish")
    _patches.setattr(BlockingChannel, "basic_publish", publish_hook(publish))
    consume = _original(BlockingChannel, "basic_consume")
    _patches.setattr(BlockingChannel, "basic_consume", consume_hook(consume))


def _original(cls: type, name: str) -> Any:
    return class_method(cls, name, "pika", "pika>=1.3")
