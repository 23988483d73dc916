"""From shadow, a consumer of a primary consumer group neither reads nor commits.

Two ways a shadow can reach the primary's group: a shadow request using the consumer the
primary process shares (a poll would take a message the primary never sees, a commit
would move the primary's position past messages it has not processed), and a consumer
created in a ``SHADOW_MODE`` process before ``install()`` (or from a class taken before
it), which kept the primary's ``group.id``. Under ``install()``, in shadow, such a
consumer's offset calls (``commit``, ``store_offsets``) are suppressed and recorded as
``Kind.KAFKA_OFFSETS``; its calls that read, move or close it (``poll``, ``consume``,
``subscribe``, ``assign``, ``seek``, ``close``, ...) raise ``ShadowSideEffectBlocked``, recorded as
``Kind.KAFKA_CONSUME``. Consumers in the shadow's own group (:mod:`._consumer`) pass.

KIP-932 share consumers (``ShareConsumer``, a preview in librdkafka) have no shadow group
rule yet: from shadow, every call of theirs that takes or acknowledges records is refused.

The client's ``Consumer`` is a C type: as for producers (:mod:`._backstop`), the guard
writes its method table, so every instance and subclass is covered, including
``DeserializingConsumer``. ``AIOConsumer`` runs its consumer's calls on worker threads
that do not carry the request's context: its own methods are guarded in place.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

from confluent_kafka import TopicPartition, cimpl

from shadowguard.contract import PROCESS, Kind, Patches, record, refuse, scope_now
from shadowguard.integrations.confluent_kafka._backstop import set_type_method
from shadowguard.integrations.confluent_kafka._consumer import in_shadow_group

__all__ = [
    "OFFSET_CALLS",
    "REFUSED_CALLS",
    "SHARE_CALLS",
    "guard_aio_consumer",
    "guard_consumer_type",
]

#: Calls that commit or store a position in the consumer's group: suppressed.
OFFSET_CALLS = ("commit", "store_offsets")
#: Calls that take messages, change which ones the consumer takes next, or end it (the
#: primary's own worker would find its consumer closed): refused.
REFUSED_CALLS = (
    "subscribe",
    "unsubscribe",
    "poll",
    "consume",
    "assign",
    "unassign",
    "incremental_assign",
    "incremental_unassign",
    "seek",
    "pause",
    "resume",
    "close",
    "__exit__",
)
#: The calls of a share consumer that take or acknowledge records: refused in shadow.
SHARE_CALLS = (
    "subscribe",
    "unsubscribe",
    "poll",
    "acknowledge",
    "acknowledge_offset",
    "commit_sync",
    "commit_async",
)
#: The client's own type, taken at import: ``install()`` swaps ``cimpl.Consumer`` itself.
_CLIENT: type = cimpl.Consumer
#: Absent before confluent-kafka 2.14.
_SHARE_CLIENT: type | None = getattr(cimpl, "ShareConsumer", None)
_REMEDY = (
    "a shadow must not read from or commit for the primary's consumer group. In a "
    "SHADOW_MODE worker, call shadowguard.install() before creating the consumer, through "
    "confluent_kafka.Consumer (or DeserializingConsumer, confluent_kafka.aio.AIOConsumer) "
    "from a class not imported or subclassed before install(), so it joins the shadow "
    "group (group.id + SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX); from a shadow request, "
    "create a consumer of its own instead of using the primary's"
)

_SHARE_REMEDY = (
    "shadowguard gives share consumers no shadow group yet: a shadow would take records "
    "from the primary's share group. Read with a confluent_kafka.Consumer created in shadow "
    "after shadowguard.install() (it joins a consumer group of its own), or keep this code "
    "out of shadow"
)


def _class_name(consumer: Any) -> str:
    return f"{type(consumer).__module__}.{type(consumer).__qualname__}"


def _offsets(consumer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """What ``commit``/``store_offsets`` would commit: ``(message, offsets)`` as the client takes them."""
    message = kwargs.get("message", args[0] if args else None)
    offsets = kwargs.get("offsets", args[1] if len(args) > 1 else None)
    if offsets is not None:
        return list(offsets)
    if message is not None:
        return [TopicPartition(message.topic(), message.partition(), message.offset() + 1)]
    return []


def suppress_offsets(
    consumer: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], inner: Any = None
) -> Any:
    """Record the offsets call as suppressed; return what the client would have returned."""
    offsets = _offsets(consumer, args, kwargs)
    record(
        Kind.KAFKA_OFFSETS,
        ",".join(sorted({tp.topic for tp in offsets})) or "<consumer>",
        name,
        {
            "offsets": tuple((tp.topic, tp.partition, tp.offset) for tp in offsets),
            "consumer_class": _class_name(consumer),
        },
    )
    if name == "commit" and kwargs.get("asynchronous", True) is False:
        # A synchronous commit returns the offsets it committed; without any given, the
        # consumer's current positions (a local read, no broker round trip).
        client = consumer if inner is None else inner
        return offsets or client.position(client.assignment())
    return None


def _refusal(consumer: Any, name: str) -> Exception:
    if _SHARE_CLIENT is not None and isinstance(consumer, _SHARE_CLIENT):
        what, remedy = "a share consumer (KIP-932)", _SHARE_REMEDY
    else:
        what = "a consumer of a primary consumer group (created as primary, or before install())"
        remedy = _REMEDY
    return refuse(
        Kind.KAFKA_CONSUME,
        "<consumer>",
        name,
        f"{type(consumer).__name__}.{name}() in shadow on {what}",
        remedy=remedy,
        detail={"consumer_class": _class_name(consumer)},
    )


def _guarded(name: str, client: Callable[..., Any]) -> Callable[..., Any]:
    offsets = name in OFFSET_CALLS

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or in_shadow_group(self):
            return client(self, *args, **kwargs)
        if offsets:
            return suppress_offsets(self, name, args, kwargs)
        raise _refusal(self, name)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = client.__doc__
    return method


# poll() and consume() run once per message or batch: their primary path names the
# client's parameters, as re-packing *args/**kwargs for a C method costs about 0.4 us.
_OMITTED: Any = object()


def _guarded_poll(client: Callable[..., Any]) -> Callable[..., Any]:
    def poll(self: Any, timeout: float = _OMITTED) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or in_shadow_group(self):
            return client(self) if timeout is _OMITTED else client(self, timeout)
        raise _refusal(self, "poll")

    return poll


def _guarded_consume(client: Callable[..., Any]) -> Callable[..., Any]:
    def consume(self: Any, num_messages: int = _OMITTED, timeout: float = _OMITTED) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or in_shadow_group(self):
            if timeout is _OMITTED:
                return client(self) if num_messages is _OMITTED else client(self, num_messages)
            return client(self, 1 if num_messages is _OMITTED else num_messages, timeout)
        raise _refusal(self, "consume")

    return consume


_NAMED = {"poll": _guarded_poll, "consume": _guarded_consume}


def guard_consumer_type(patches: Patches) -> None:
    """Guard the client's consumer types from shadow, for every instance and subclass."""
    _guard_type(patches, _CLIENT, OFFSET_CALLS + REFUSED_CALLS)
    if _SHARE_CLIENT is not None:
        _guard_type(patches, _SHARE_CLIENT, SHARE_CALLS)


def _guard_type(patches: Patches, client: type, names: tuple[str, ...]) -> None:
    for name in names:
        original = client.__dict__.get(name)
        if original is None:  # a method this client version does not have
            continue
        named = _NAMED.get(name) if client is _CLIENT else None
        method = named(original) if named is not None else _guarded(name, original)
        method.__doc__ = original.__doc__
        set_type_method(client, name, method)
        patches.add(
            f"confluent_kafka.cimpl.{client.__name__}.{name}",
            functools.partial(set_type_method, client, name, original),
        )


def _aio_guarded(
    name: str, original: Callable[..., Coroutine[Any, Any, Any]]
) -> Callable[..., Coroutine[Any, Any, Any]]:
    offsets = name in OFFSET_CALLS

    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await original(self, *args, **kwargs)
        inner = getattr(self, "_consumer", None)
        if in_shadow_group(inner):
            return await original(self, *args, **kwargs)
        if offsets:
            return suppress_offsets(self, name, args, kwargs, inner)
        raise _refusal(self, name)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = original.__doc__
    return method


def guard_aio_consumer(patches: Patches, cls: type) -> None:
    """The same for ``confluent_kafka.aio.AIOConsumer``, whose calls run on worker threads."""
    for name in OFFSET_CALLS + REFUSED_CALLS:
        original = cls.__dict__.get(name)
        if original is not None:
            patches.setattr(cls, name, _aio_guarded(name, original))
