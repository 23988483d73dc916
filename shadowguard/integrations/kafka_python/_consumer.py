"""``KafkaConsumer`` in shadow: the shadow group rule, and a backstop for primary groups.

Created in shadow, a consumer joins the shadow's own group (the rule and the backstop's
refusals are shared with the other Kafka client guards: ``shadowguard._kafka_clients``).

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
_BACKSTOP = _kafka_clients.ConsumerBackstop("KafkaConsumer", lambda c: c.config.get("group_id"))

#: ``KafkaConsumer.__init__``: created in shadow, the consumer joins the shadow group.
init_hook = _kafka_clients.group_init_hook
in_shadow_group = _BACKSTOP.in_shadow_group
refusing_hook = _BACKSTOP.refusing_hook


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
