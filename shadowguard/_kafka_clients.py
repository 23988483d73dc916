"""Kafka policy shared by the kafka-python and aiokafka guards (and, where it is the same,
confluent-kafka's).

The shadow group rule for consumers given ``group_id=`` as a keyword, the backstop that
refuses a consumer of a primary group from shadow, and the records and refusals the guards
make. Each guard says how its client names a consumer's group (``group_of``) and its
consumer class; the rest is the same for both.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from shadowguard.contract import (
    PROCESS,
    Kind,
    get_settings,
    mark_wrapped,
    record,
    refuse,
    scope_now,
)

__all__ = [
    "TRANSACTION_METHODS",
    "ConsumerBackstop",
    "GroupOf",
    "consume_refusal",
    "group_init_hook",
    "in_shadow_group",
    "key_text",
    "produce_detail",
    "record_offsets",
    "record_transaction",
]

#: The producer methods that take part in a transaction (kafka-python, confluent-kafka).
TRANSACTION_METHODS = (
    "init_transactions",
    "begin_transaction",
    "send_offsets_to_transaction",
    "commit_transaction",
    "abort_transaction",
)
#: How a guard reads the group a consumer was created with (``None``: no group).
GroupOf = Callable[[Any], Any]
_MARK = "_shadowguard_group"


def group_init_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """A consumer's ``__init__(*topics, **configs)``: created in shadow, the consumer joins the
    shadow group.

    Created in shadow (a ``SHADOW_MODE`` worker, or inside a shadow scope), a consumer gets
    ``group_id`` and ``group_instance_id`` with the shadow group suffix (``-shadow`` by
    default, ``SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX``, the setting confluent-kafka consumers
    use): it reads every message in a group of its own and commits only that group's
    offsets. A consumer without ``group_id`` belongs to no group and is built as given.
    """

    def __init__(self: Any, *topics: Any, **configs: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            original(self, *topics, **configs)
            return
        suffix = get_settings().kafka_shadow_group_suffix
        # An empty group_id is a group like any other (None is no group); an empty
        # group_instance_id is refused by the client, and is left for it to refuse.
        if configs.get("group_id") is not None:
            configs["group_id"] = f"{configs['group_id']}{suffix}"
        if configs.get("group_instance_id"):
            configs["group_instance_id"] = f"{configs['group_instance_id']}{suffix}"
        original(self, *topics, **configs)
        setattr(self, _MARK, True)

    mark_wrapped(__init__, original)
    return __init__


def in_shadow_group(consumer: Any, group_of: GroupOf) -> bool:
    """May ``consumer`` read and commit in shadow: no group, or the shadow's own?"""
    return getattr(consumer, _MARK, False) is True or group_of(consumer) is None


@dataclass(frozen=True)
class ConsumerBackstop:
    """The backstop on a consumer class's methods: from shadow, a consumer of a primary group
    neither joins, reads nor commits. ``client`` names the class in the refusal."""

    client: str
    group_of: GroupOf

    def in_shadow_group(self, consumer: Any) -> bool:
        """May ``consumer`` read and commit in shadow: no group, or the shadow's own?"""
        return in_shadow_group(consumer, self.group_of)

    def refusing_hook(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        """The method ``name``: refused in shadow on a consumer of a primary group."""
        reads = self.in_shadow_group

        def method(this: Any, *args: Any, **kwargs: Any) -> Any:
            if (scope_now() is None and not PROCESS.shadow) or reads(this):
                return original(this, *args, **kwargs)
            raise consume_refusal(this, name, self.group_of, self.client)

        method.__name__ = method.__qualname__ = name
        mark_wrapped(method, original)
        return method

    def refusing_async_hook(
        self, name: str, original: Callable[..., Any]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        """The coroutine method ``name``: refused in shadow on a consumer of a primary group."""
        reads = self.in_shadow_group

        async def method(this: Any, *args: Any, **kwargs: Any) -> Any:
            if (scope_now() is None and not PROCESS.shadow) or reads(this):
                return await original(this, *args, **kwargs)
            raise consume_refusal(this, name, self.group_of, self.client)

        method.__name__ = method.__qualname__ = name
        mark_wrapped(method, original)
        return method


def consume_refusal(consumer: Any, name: str, group_of: GroupOf, client: str) -> Exception:
    """The refusal of ``client.name()`` from shadow on a consumer of a primary group."""
    group = str(group_of(consumer))
    return refuse(
        Kind.KAFKA_CONSUME,
        group,
        name,
        f"{client}.{name}() from shadow on a consumer of the primary's group {group!r}",
        remedy="create the consumer in shadow after shadowguard.install(): it then joins the "
        "shadow's own group (group_id plus SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX)",
        detail={"consumer_class": type(consumer).__name__},
    )


def record_offsets(
    consumer: Any, group: Any, name: str, offsets: Iterable[tuple[Any, Any]]
) -> None:
    """Record a commit of ``(TopicPartition, offset)`` pairs that did not reach the broker."""
    triples = [(tp.topic, tp.partition, offset) for tp, offset in offsets]
    detail = {"offsets": triples, "consumer_class": type(consumer).__name__}
    record(Kind.KAFKA_OFFSETS, str(group), name, detail)


def record_transaction(
    name: str, transactional_id: Any, error: BaseException | None = None
) -> None:
    """Record a transaction call that did not reach the broker (``error``: what the client's
    own check raised, for a producer without a ``transactional_id``)."""
    if error is not None:
        record(Kind.KAFKA_TRANSACTION, "?", name, {"transactional_id": None}, error=error)
        return
    detail = {"transactional_id": transactional_id}
    record(Kind.KAFKA_TRANSACTION, str(transactional_id), name, detail)


def produce_detail(partition: int, key_bytes: Any, value_bytes: Any) -> dict[str, Any]:
    """The ``detail`` of a produced record's ``kafka.produce`` suppression."""
    return {
        "partition": partition,
        "key": key_text(key_bytes),
        "key_bytes": len(key_bytes or b""),
        "value_bytes": len(value_bytes or b""),
    }


def key_text(key: Any) -> str | None:
    """A serialized key as text for the record (undecodable bytes escaped)."""
    if key is None:
        return None
    return bytes(key).decode("utf-8", "backslashreplace")
