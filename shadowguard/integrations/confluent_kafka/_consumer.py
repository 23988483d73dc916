"""Consumers created in shadow get a consumer group of their own: the shadow group rule.

A worker deployed with ``SHADOW_MODE=true`` beside the primary's workers runs the same
code with the same ``group.id``. Joining that group would take partitions away from the
primary and commit offsets in its name. ``install()`` swaps in consumer classes that,
when created in shadow, append the shadow group suffix (``-shadow`` by default,
``SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX``) to ``group.id`` and to ``group.instance.id``
(a static member of the primary's group would be fenced by a shadow one with its id), so
the shadow reads every message on its own and its offsets are its own group's.

A consumer created as primary is built exactly as given. A consumer of the shadow's own
group is marked (``_shadow_group``) for the backstop (:mod:`._consumer_backstop`), which
lets it read and commit in shadow; every other consumer is one of a primary group there.
The asyncio consumers of ``confluent_kafka.aio`` build their consumer through
``confluent_kafka.Consumer`` when they are created, so they get the rule from this class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import DeserializingConsumer, cimpl

from shadowguard.contract import PROCESS, get_settings, scope_now
from shadowguard.integrations.confluent_kafka._swap import SwappedIn

__all__ = [
    "GuardedConsumer",
    "GuardedDeserializingConsumer",
    "in_shadow_group",
    "shadow_arguments",
    "shadow_config",
]

#: The configuration keys that name a consumer group or a member of one, as librdkafka
#: spells them. Also matched spelled with ``_`` (``group_id=``), as the client's type stubs
#: show keyword arguments: should a client version accept them, they are covered too.
_GROUP_KEYS = frozenset({"group.id", "group.instance.id"})


def _renamed(key: object, value: Any, suffix: str) -> Any:
    if not isinstance(key, str) or key.replace("_", ".") not in _GROUP_KEYS:
        return value
    # The client turns any value into its string; None and "" name no group at all.
    if value is None or value == "":
        return value
    return f"{value}{suffix}"


def shadow_config(conf: Mapping[Any, Any], suffix: str) -> dict[Any, Any]:
    """A copy of ``conf`` with ``group.id`` and ``group.instance.id`` given ``suffix``."""
    return {key: _renamed(key, value, suffix) for key, value in conf.items()}


def shadow_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A consumer's constructor arguments with the shadow group rule applied.

    ``get_settings()`` raises on a malformed environment: a shadow consumer is not
    created with a suffix nobody chose.
    """
    suffix = get_settings().kafka_shadow_group_suffix
    if args and isinstance(args[0], Mapping):
        args = (shadow_config(args[0], suffix), *args[1:])
    return args, shadow_config(kwargs, suffix)


def in_shadow_group(consumer: Any) -> bool:
    """Was ``consumer`` created in shadow, under the shadow group rule?"""
    return getattr(consumer, "_shadow_group", False) is True


class GuardedConsumer(cimpl.Consumer, metaclass=SwappedIn, replaces=cimpl.Consumer):
    """``confluent_kafka.Consumer``: created in shadow, it joins the shadow's own group."""

    __slots__ = ("_shadow_group",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            super().__init__(*args, **kwargs)
            return
        args, kwargs = shadow_arguments(args, kwargs)
        super().__init__(*args, **kwargs)
        self._shadow_group = True


class GuardedDeserializingConsumer(
    DeserializingConsumer,
    metaclass=SwappedIn,
    replaces=DeserializingConsumer,
):
    """``confluent_kafka.DeserializingConsumer``: created in shadow, it joins the shadow's group."""

    def __init__(self, conf: dict[str, Any]) -> None:
        if scope_now() is None and not PROCESS.shadow:
            super().__init__(conf)
            return
        (conf,), _ = shadow_arguments((conf,), {})
        super().__init__(conf)
        self._shadow_group = True
