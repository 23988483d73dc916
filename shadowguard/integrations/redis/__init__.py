"""redis (redis-py): in shadow, reads run; writes get a plausible reply and never reach Redis.

``install()`` patches the two seams every command of ``redis.Redis`` and
``redis.asyncio.Redis`` goes through, on the classes, so clients created before it are
covered too (there is no per-client ``guard()``): the single command (``execute_command``,
and a pipeline in immediate mode after ``WATCH``) and a pipeline's batch (transactional
``MULTI``/``EXEC`` or not). The primary path pays one ContextVar read and one flag.

In shadow each command is classified from the server's own command table (``COMMAND``:
flags and ACL categories, fetched once per connection pool on its first shadow command):
reads run; writes, ``PUBLISH``, ``CONFIG SET`` and other state changes are answered with
the reply the server would give had they succeeded, and recorded as
``Suppression(kind="redis.command")``; Lua scripts other than the read-only forms,
consumers (``BLPOP``, ``XREADGROUP``) and anything without a known reply are refused with
``ShadowSideEffectBlocked`` before a byte is sent. A pipeline sends only its reads (inside
``MULTI``/``EXEC`` if it is a transaction) and gets the other replies at their positions.

The package, in the order a shadow command meets it:

- ``_sync``: the hooks on ``redis.client`` (one command; a pipeline's batch, split and
  spliced back).
- ``_asyncio``: the same hooks on ``redis.asyncio.client``.
- ``_table``: the command table of each connection pool, fetched once.
- ``_commands``: the verdict on a command from the server's flags, or the built-in table.
- ``_shadow``: run it, answer it or refuse it, and record; the reply through the client's
  response callback.
- ``_replies``: the reply each write gets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shadowguard.contract import Patches, class_method, missing_extra_error, names_option

try:
    import redis
    import redis.asyncio.client
    import redis.asyncio.lock
    import redis.client
    import redis.lock
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise missing_extra_error("redis", "redis") from exc

from shadowguard.integrations.redis import _asyncio, _shadow, _sync, _table

__all__ = ["install", "uninstall"]

_patches = Patches("redis")
_SEND = "_send_command_parse_response"


def install(**options: Any) -> None:
    """Guard every ``redis.Redis`` and ``redis.asyncio.Redis`` client and pipeline; idempotent.

    ``shadow_groups``: stream consumer groups of the shadow's own; their ``XREADGROUP``,
    ``XACK``, ``XCLAIM``, ``XAUTOCLAIM`` and ``XGROUP`` commands run in shadow, so a shadow
    worker reads every entry through its own group while the primary's groups are
    untouched. Clients created before ``install()`` are covered too (the patches are on the
    classes); :func:`uninstall` restores them.
    """
    _patches.install(_apply, options)


def uninstall() -> None:
    """Restore redis-py's classes and forget every command table fetched."""
    _patches.uninstall(after=_forget)


def _apply(*, shadow_groups: Iterable[str] = ()) -> None:
    groups = names_option("redis", "shadow_groups", shadow_groups, "consumer group names")
    _shadow.set_shadow_groups(groups)
    for client, hooks in ((redis.client, _sync), (redis.asyncio.client, _asyncio)):
        redis_class, pipeline_class = client.Redis, client.Pipeline
        _patches.setattr(redis_class, _SEND, hooks.send_hook(_original(redis_class, _SEND)))
        for name, transaction in (("_execute_transaction", True), ("_execute_pipeline", False)):
            hook = hooks.pipeline_hook(_original(pipeline_class, name), transaction)
            _patches.setattr(pipeline_class, name, hook)
    lock_classes = (redis.lock.Lock, redis.asyncio.lock.Lock)
    _shadow.know_lock_scripts(
        [
            getattr(cls, name)
            for cls in lock_classes
            for name in ("LUA_RELEASE_SCRIPT", "LUA_EXTEND_SCRIPT", "LUA_REACQUIRE_SCRIPT")
            if isinstance(getattr(cls, name, None), str)
        ]
    )


def _original(cls: type, name: str) -> Any:
    return class_method(cls, name, "redis", "redis>=5.0")


def _forget() -> None:
    _table.forget()
    _shadow.forget_lock_scripts()
    _shadow.set_shadow_groups(frozenset())
