"""RabbitMQ (AMQP 0-9-1) policy shared by the pika and aio-pika guards.

Which queues are the shadow's own (the mirror rule), when a shadow acknowledgement may
reach the broker, and the records and refusals both guards make. A shadow worker must not
take messages off the primary's queues: it consumes a mirror queue bound to the same
exchange (a fanout exchange delivers a copy to each queue bound to it).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from shadowguard.contract import Kind, Patches, mark_wrapped, names_option, record, refuse, shadow
from shadowguard.errors import ConfigError

__all__ = [
    "BINDINGS",
    "SERVER_NAMED_PREFIX",
    "Binding",
    "ChannelHooks",
    "ChannelLedger",
    "Hook",
    "MirrorRule",
    "admin_reply",
    "binding_of",
    "consume_refusal",
    "consumer_reason",
    "hook_channel",
    "in_shadow",
    "in_shadow_async",
    "mirror_rule",
    "record_ack",
    "record_admin",
    "record_publish",
    "wrap_hook",
]

#: RabbitMQ's prefix for the names it generates (``queue_declare("")``): only the channel
#: that declared such a queue learns its name, so it is nobody else's queue.
SERVER_NAMED_PREFIX = "amq.gen-"
DEFAULT_SUFFIX = "-shadow"

_CONSUME_REMEDY = (
    "Consuming from it in shadow would take messages off the primary's queue. Give the "
    "shadow worker a mirror queue: bind a queue named '{queue}{suffix}' (or a server-named "
    "one) to the same exchange (with a fanout exchange each bound queue gets its own copy) "
    "and consume that; or name the queue in "
    "shadowguard.install({integration}={{'shadow_queues': [...]}}) if it is the shadow's own"
)


@dataclass(frozen=True)
class MirrorRule:
    """Which queues (and exchanges) are the shadow's own: a name ending in ``suffix``, a name in
    ``queues``, or a server-named queue."""

    suffix: str = DEFAULT_SUFFIX
    queues: frozenset[str] = frozenset()

    def owns(self, name: object) -> bool:
        if not isinstance(name, str) or not name:
            return False  # "" means "the channel's last declared queue", which may be anyone's
        return (
            name in self.queues
            or name.startswith(SERVER_NAMED_PREFIX)
            or (bool(self.suffix) and name.endswith(self.suffix))
        )


def mirror_rule(integration: str, shadow_suffix: object, shadow_queues: object) -> MirrorRule:
    """The rule from ``install()`` options, validated (a :class:`ConfigError` names the option)."""
    if not isinstance(shadow_suffix, str) or not shadow_suffix:
        raise ConfigError(
            f"the {integration} integration's shadow_suffix={shadow_suffix!r} is not valid: "
            "give a non-empty string such as '-shadow'"
        )
    queues = names_option(integration, "shadow_queues", shadow_queues, "queue names")
    return MirrorRule(shadow_suffix, queues)


#: A hook factory: the channel method's original and the mirror rule, to the hook.
Hook = Callable[[Callable[..., Any], MirrorRule], Callable[..., Any]]


class ChannelHooks(dict[str, Hook]):
    """A client's hook factory for each channel method it patches, by method name."""

    def hook(self, name: str) -> Callable[[Hook], Hook]:
        """Register the decorated factory as the one for the channel method ``name``."""

        def register(factory: Hook) -> Hook:
            self[name] = factory
            return factory

        return register


def wrap_hook(
    hook: Hook, name: str, original: Callable[..., Any], rule: MirrorRule
) -> Callable[..., Any]:
    """The hook ``hook`` makes for the channel method ``name``, named and documented as it."""
    wrapped = hook(original, rule)
    wrapped.__name__ = wrapped.__qualname__ = name
    wrapped.__doc__ = original.__doc__
    return mark_wrapped(wrapped, original)


def hook_channel(
    patches: Patches,
    channel: type,
    hooks: Mapping[str, Hook],
    original_of: Callable[[type, str], Callable[..., Any]],
    rule: MirrorRule,
) -> None:
    """Patch each method of ``channel`` named in ``hooks`` with its hook, in ``patches``."""
    for name, hook in hooks.items():
        patches.setattr(channel, name, wrap_hook(hook, name, original_of(channel, name), rule))


@dataclass
class _Took:
    consumer_tags: set[str] = field(default_factory=set)
    got: bool = False


class ChannelLedger:
    """What each channel took in shadow from the shadow's own queues (consumer tags, gets).

    A shadow acknowledgement reaches the broker only on a channel that took something in
    shadow and whose every live consumer is one of those: its delivery tags then name the
    shadow's own messages. Elsewhere the tag may name a primary delivery, and acking it would
    take the message from the primary (or, acked twice, close the primary's channel).
    """

    def __init__(self) -> None:
        self._took: weakref.WeakKeyDictionary[Any, _Took] = weakref.WeakKeyDictionary()

    def consumed(self, channel: Any, consumer_tag: str) -> None:
        self._took.setdefault(channel, _Took()).consumer_tags.add(consumer_tag)

    def got(self, channel: Any) -> None:
        self._took.setdefault(channel, _Took()).got = True

    def acks_run(self, channel: Any, live_consumer_tags: Collection[str]) -> bool:
        took = self._took.get(channel)
        if took is None or not (took.consumer_tags or took.got):
            return False
        return all(tag in took.consumer_tags for tag in live_consumer_tags)

    def forget(self) -> None:
        self._took = weakref.WeakKeyDictionary()


def consumer_reason(queue: object) -> str:
    return f"amqp consumer of {queue!r}"


def in_shadow(callback: Any, reason: str) -> Any:
    """``callback`` run as shadow (a scope per message): a consumer started in shadow
    handles its messages as shadow, whatever context the client delivers them in."""

    def handle(*args: Any, **kwargs: Any) -> Any:
        with shadow(reason):
            return callback(*args, **kwargs)

    return handle


def in_shadow_async(callback: Any, reason: str) -> Any:
    """:func:`in_shadow` for a client that awaits its consumer callback (which may return an
    awaitable or not): the scope spans the awaited result too."""

    async def handle(message: Any) -> Any:
        with shadow(reason):
            result = callback(message)
            if inspect.isawaitable(result):
                return await result
            return result

    return handle


def consume_refusal(
    integration: str, rule: MirrorRule, client: str, target: str, operation: str, queue: object
) -> Exception:
    """The recorded refusal to consume ``queue`` in shadow, with the mirror-queue remedy."""
    name = queue if isinstance(queue, str) else repr(queue)
    return refuse(
        Kind.AMQP_CONSUME,
        target,
        operation,
        f"{operation} on the RabbitMQ queue {name!r} in shadow: it is not the shadow's own queue",
        remedy=_CONSUME_REMEDY.format(
            queue=name or "<queue>", suffix=rule.suffix, integration=integration
        ),
        detail={"queue": name, "client": client},
    )


def record_publish(
    client: str,
    target: str,
    exchange: object,
    routing_key: object,
    body_bytes: int,
    *,
    mandatory: bool,
    confirm: bool,
) -> None:
    record(
        Kind.AMQP_PUBLISH,
        target,
        "basic_publish",
        {
            "exchange": exchange,
            "routing_key": routing_key,
            "body_bytes": body_bytes,
            "mandatory": bool(mandatory),
            "confirm": confirm,
            "client": client,
        },
    )


def record_ack(
    client: str,
    target: str,
    operation: str,
    delivery_tag: object,
    *,
    multiple: bool = False,
    requeue: bool | None = None,
) -> None:
    record(
        Kind.AMQP_ACK,
        target,
        operation,
        {
            "delivery_tag": delivery_tag,
            "multiple": bool(multiple),
            "requeue": requeue,
            "client": client,
        },
    )


def record_admin(client: str, target: str, operation: str, what: str, name: object) -> None:
    record(Kind.AMQP_ADMIN, target, operation, {what: name, "client": client})


#: The (un)bindings: the argument naming what each changes (a queue, or the destination
#: exchange). Of what is not the shadow's own, it would change which messages reach the
#: primary's queues.
BINDINGS = {
    "queue_bind": "queue",
    "queue_unbind": "queue",
    "exchange_bind": "destination",
    "exchange_unbind": "destination",
}


def admin_reply(spec: Any, operation: str, declared: Any) -> Any:
    """The broker's reply to ``operation``, answered in shadow from ``declared``, the reply to
    the passive declare sent in its place. ``spec`` is the client's module of AMQP method
    classes (``pika.spec``, ``pamqp.commands``: both spell them alike)."""
    if operation == "queue_purge":
        return spec.Queue.PurgeOk(message_count=declared.message_count)
    if operation == "queue_delete":
        return spec.Queue.DeleteOk(message_count=declared.message_count)
    replies = {
        "exchange_delete": spec.Exchange.DeleteOk,
        "queue_bind": spec.Queue.BindOk,
        "queue_unbind": spec.Queue.UnbindOk,
        "exchange_bind": spec.Exchange.BindOk,
        "exchange_unbind": spec.Exchange.UnbindOk,
    }
    return replies[operation]()


@dataclass(frozen=True)
class Binding:
    """An (un)binding call: its arguments (defaults applied), what it changes and its name."""

    arguments: dict[str, Any]
    key: str  # "queue" or "exchange", as record_admin names it
    target: Any


def binding_of(
    signature: inspect.Signature, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Binding:
    """The (un)binding ``name`` called with ``args`` (the channel first) and ``kwargs``."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    what = BINDINGS[name]
    key = "queue" if what == "queue" else "exchange"
    return Binding(bound.arguments, key, bound.arguments[what])
