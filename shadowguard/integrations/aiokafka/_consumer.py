"""``AIOKafkaConsumer`` in shadow: the shadow group rule, and a backstop for primary groups.

Created in shadow (a ``SHADOW_MODE`` worker, or inside a shadow scope), a consumer gets
``group_id`` and ``group_instance_id`` with the shadow group suffix (``-shadow`` by
default, ``SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX``, the setting confluent-kafka consumers
use): it reads every message in a group of its own and commits only that group's offsets.
A consumer without ``group_id`` belongs to no group and is built as given.

From shadow, a consumer of a primary group (created as primary, or before ``install()``)
neither joins, reads nor commits: ``start()`` (which joins the group), ``getone()``,
``getmany()``, iteration, subscriptions, seeks and ``stop()`` raise
``ShadowSideEffectBlocked``; ``commit()`` is recorded as suppressed.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
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
    "REFUSED",
    "REFUSED_ASYNC",
    "commit_hook",
    "in_shadow_group",
    "init_hook",
    "refusing_async_hook",
    "refusing_hook",
]

#: Methods that would join, read from, leave or move a consumer group.
REFUSED = ("subscribe", "unsubscribe", "assign", "seek", "pause", "resume")
REFUSED_ASYNC = (
    "start",
    "getone",
    "getmany",
    "__anext__",
    "seek_to_beginning",
    "seek_to_end",
    "seek_to_committed",
    "stop",
)
_MARK = "_shadowguard_group"


def init_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """``AIOKafkaConsumer.__init__``: created in shadow, the consumer joins the shadow group."""

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


def in_shadow_group(consumer: Any) -> bool:
    """May ``consumer`` read and commit in shadow: no group, or the shadow's own?"""
    return getattr(consumer, _MARK, False) is True or consumer._group_id is None


def refusing_hook(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """The method ``name``: refused in shadow on a consumer of a primary group."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or in_shadow_group(self):
            return original(self, *args, **kwargs)
        raise _refusal(self, name)

    method.__name__ = method.__qualname__ = name
    mark_wrapped(method, original)
    return method


def refusing_async_hook(
    name: str, original: Callable[..., Any]
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """The coroutine method ``name``: refused in shadow on a consumer of a primary group."""

    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or in_shadow_group(self):
            return await original(self, *args, **kwargs)
        raise _refusal(self, name)

    method.__name__ = method.__qualname__ = name
    mark_wrapped(method, original)
    return method


def commit_hook(original: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
    """``commit``: recorded, not sent, in shadow on a consumer of a primary group."""

    async def commit(self: Any, offsets: Any = None) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or in_shadow_group(self):
            return await original(self, offsets)
        triples = [
            (tp.topic, tp.partition, o[0] if isinstance(o, tuple) else o)
            for tp, o in (offsets or {}).items()
        ]
        detail = {"offsets": triples, "consumer_class": type(self).__name__}
        record(Kind.KAFKA_OFFSETS, str(self._group_id), "commit", detail)
        return None

    mark_wrapped(commit, original)
    return commit


def _refusal(consumer: Any, name: str) -> Exception:
    group = str(consumer._group_id)
    return refuse(
        Kind.KAFKA_CONSUME,
        group,
        name,
        f"AIOKafkaConsumer.{name}() from shadow on a consumer of the primary's group {group!r}",
        remedy="create the consumer in shadow after shadowguard.install(): it then joins the "
        "shadow's own group (group_id plus SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX)",
        detail={"consumer_class": type(consumer).__name__},
    )
