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

from shadowguard import _kafka_clients
from shadowguard.contract import PROCESS, mark_wrapped, scope_now

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
_CLIENT = "KafkaConsumer"


def _group_of(consumer: Any) -> Any:
    return consumer.config.get("group_id")


def init_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """``KafkaConsumer.__init__``: created in shadow, the consumer joins the shadow group."""
    return _kafka_clients.group_init_hook(original)


def in_shadow_group(consumer: Any) -> bool:
    """May ``consumer`` read and commit in shadow: no group, or the shadow's own?"""
    return _kafka_clients.in_shadow_group(consumer, _group_of)


def refusing_hook(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """The method ``name``: refused in shadow on a consumer of a primary group."""
    return _kafka_clients.refusing_hook(name, original, _group_of, _CLIENT)


def commit_hook(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``commit``/``commit_async``: recorded, not sent, in shadow on a primary group."""

    def method(self: Any, offsets: Any = None, *args: Any, **kwargs: Any) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or in_shadow_group(self):
            return original(self, offsets, *args, **kwargs)
        pairs = [(tp, getattr(o, "offset", o)) for tp, o in (offsets or {}).items()]
        _kafka_clients.record_offsets(self, self.config["group_id"], name, pairs)
        return Future().success(None) if name == "commit_async" else None

    method.__name__ = method.__qualname__ = name
    mark_wrapped(method, original)
    return method
