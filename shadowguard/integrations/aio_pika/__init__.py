"""aio-pika: in shadow, publishes are framed and dropped; the primary's queues are left alone.

``install()`` patches ``aiormq.Channel``, the channel every aio-pika channel (robust or not)
talks through, on the class, so connections and channels created before it are covered too
(there is no per-channel ``guard()``); code using aiormq directly is guarded as well. The
primary path pays one ContextVar read and one flag.

In shadow, ``Exchange.publish`` (``channel.default_exchange`` too) builds and marshals the
message's frames (a body or property of the wrong type fails as it does on the primary),
records ``Suppression(kind="amqp.publish")`` naming the exchange and routing key, sends
nothing and, with publisher confirms on, returns a successful ``Basic.Ack``. A shadow consumer
may read only the shadow's own queues (a name ending in ``-shadow``, one named in
``shadow_queues``, or a server-named ``amq.gen-`` queue): ``Queue.consume``, ``Queue.get`` and
``Queue.iterator`` on any other queue raise ``ShadowSideEffectBlocked``. Acks, nacks and
rejects reach the broker only on channels whose consumers are all the shadow's own; purges,
deletes and (un)bindings of the primary's queues and exchanges are answered and not sent. A
consumer started in shadow handles each message in a shadow scope of its own.

The package: ``_channel``, the hooks on ``aiormq.Channel``. The mirror rule and the ack
ledger are shared with the pika guard (``shadowguard._amqp``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shadowguard.contract import Patches, class_method, missing_extra_error

try:
    import aio_pika  # noqa: F401  (the extra installs both)
    import aiormq
    import aiormq.channel
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise missing_extra_error("aio_pika", "aio-pika") from exc

from shadowguard._amqp import DEFAULT_SUFFIX, hook_channel, mirror_rule
from shadowguard.integrations.aio_pika._channel import HOOKS, LEDGER

__all__ = ["install", "uninstall"]

_patches = Patches("aio_pika")


def install(**options: Any) -> None:
    """Guard every aio-pika (aiormq) channel, those created before ``install()`` too; idempotent.

    ``shadow_suffix`` (default ``"-shadow"``): a queue or exchange whose name ends with it is
    the shadow's own (its mirror queue), so a shadow worker consumes, acks, binds, purges
    and deletes it. ``shadow_queues``: more queue names that are the shadow's own.
    """
    _patches.install(_apply, options)


def uninstall() -> None:
    """Restore ``aiormq.Channel`` and forget which channels consumed in shadow."""
    _patches.uninstall(after=LEDGER.forget)


def _apply(*, shadow_suffix: str = DEFAULT_SUFFIX, shadow_queues: Iterable[str] = ()) -> None:
    rule = mirror_rule("aio_pika", shadow_suffix, shadow_queues)
    hook_channel(_patches, aiormq.channel.Channel, HOOKS, _original, rule)


def _original(cls: type, name: str) -> Any:
    return class_method(cls, name, "aio_pika", "aiormq>=6.8")
