"""``KafkaConsumer`` in shadow: the shadow group rule, and a backstop for primary groups.

Created in shadow (a ``SHADOW_MODE`` worker, or inside a shadow scope), a consumer gets
``group_id`` and ``group_instance_id`` with the shadow group suffix (``-shadow`` by
default, ``SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX``, the setting confluent-kafka consumers
use): it reads every message in a group of its own and commits only that group's offsets.
A consumer without ``group_id`` belongs to no group and is built as given.

From shadow, a consumer of a primary group (created as primary, or before ``install()``)
neither reads nor commits: reading would take messages from the primary (and, with
auto-commit, commit them), so ``poll()``, iteration, subscriptions, seeks, ``close()``
raise ``ShadowSideEffectBlocked``; ``commit()`` and ``commit_async()`` are recorded as
suppressed. Reads of metadata and positions pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka.future import Future

from shadowguard.contract import (
    PROCESS,
    Kind,
    get_settings,
    mark_wrapped,
    record,
    refuse,
    scope_now,
)

__all__ = ["COMMITS", "REFUSED", "commit_hook", "in_shadow_group", "init_hook", "refusing_hook"]

#: Methods that would read from, join, leave or move a consumer group.
REFUSED = (
    "poll",
    "__next__",
    "subscribe",
    "unsubscribe",
    "assign",
    "seek",
    "seek_to_beginning",
    "seek_to_end",
    "pause",
    "resume",
    "close",
)
COMMITS = ("commit", "commit_async")
_MARK = "_shadowguard_group"


def init_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """``KafkaConsumer.__init__``: created in shadow, the consumer joins the shadow group."""

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
    return getattr(consumer, _MARK, False) is True or consumer.config.get("group_id") is None


def refusing_hook(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """The method ``name``: refused in shadow on a consumer of a primary group."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or in_shadow_group(self):
            return original(self, *args, **kwargs)
        raise _refusal(self, name)

    method.__name__ = method.__qualname__ = name
    mark_wrapped(method, original)
    return method


def commit_hook(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``commit``/``commit_async``: recorded, not sent, in shadow on a primary group."""

    def method(self: Any, offsets: Any = None, *args: Any, **kwargs: Any) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or in_shadow_group(self):
            return original(self, offsets, *args, **kwargs)
        triples = [
            (tp.topic, tp.partition, getattr(o, "offset", o)) for tp, o in (offsets or {}).items()
        ]
        detail = {"offsets": triples, "consumer_class": type(self).__name__}
        record(Kind.KAFKA_OFFSETS, str(self.config["group_id"]), name, detail)
        return Future().success(None) if name == "commit_async" else None

    method.__name__ = method.__qualname__ = name
    mark_wrapped(method, original)
    return method


def _refusal(consumer: Any, name: str) -> Exception:
    group = str(consumer.config["group_id"])
    return refuse(
        Kind.KAFKA_CONSUME,
        group,
        name,
        f"KafkaConsumer.{name}() from shadow on a consumer of the primary's group {group!r}",
        remedy="create the consumer in shadow after shadowguard.install(): it then joins the "
        "shadow's own group (group_id plus SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX)",
        detail={"consumer_class": type(consumer).__name__},
    )
