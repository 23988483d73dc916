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

from shadowguard import _kafka_clients
from shadowguard.contract import PROCESS, mark_wrapped, scope_now

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
_CLIENT = "AIOKafkaConsumer"


def _group_of(consumer: Any) -> Any:
    return consumer._group_id


def init_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """``AIOKafkaConsumer.__init__``: created in shadow, the consumer joins the shadow group."""
    return _kafka_clients.group_init_hook(original)


def in_shadow_group(consumer: Any) -> bool:
    """May ``consumer`` read and commit in shadow: no group, or the shadow's own?"""
    return _kafka_clients.in_shadow_group(consumer, _group_of)


def refusing_hook(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """The method ``name``: refused in shadow on a consumer of a primary group."""
    return _kafka_clients.refusing_hook(name, original, _group_of, _CLIENT)


def refusing_async_hook(
    name: str, original: Callable[..., Any]
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """The coroutine method ``name``: refused in shadow on a consumer of a primary group."""
    return _kafka_clients.refusing_async_hook(name, original, _group_of, _CLIENT)


def commit_hook(original: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
    """``commit``: recorded, not sent, in shadow on a consumer of a primary group."""

    async def commit(self: Any, offsets: Any = None) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or in_shadow_group(self):
            return await original(self, offsets)
        pairs = [(tp, o[0] if isinstance(o, tuple) else o) for tp, o in (offsets or {}).items()]
        _kafka_clients.record_offsets(self, self._group_id, "commit", pairs)
        return None

    mark_wrapped(commit, original)
    return commit
