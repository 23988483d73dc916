"""``AIOKafkaConsumer`` in shadow: the shadow group rule, and a backstop for primary groups.

Created in shadow, a consumer joins the shadow's own group (the rule and the backstop's
refusals are shared with the other Kafka client guards: ``shadowguard._kafka_clients``).

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
_BACKSTOP = _kafka_clients.ConsumerBackstop("AIOKafkaConsumer", lambda c: c._group_id)

#: ``AIOKafkaConsumer.__init__``: created in shadow, the consumer joins the shadow group.
init_hook = _kafka_clients.group_init_hook
in_shadow_group = _BACKSTOP.in_shadow_group
refusing_hook = _BACKSTOP.refusing_hook
refusing_async_hook = _BACKSTOP.refusing_async_hook


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
