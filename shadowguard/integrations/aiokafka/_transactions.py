"""``AIOKafkaProducer`` transactions in shadow: recorded no-ops, so the primary's are untouched.

A shadow request on a shared transactional producer would otherwise commit or abort the
primary's open transaction or add offsets to it. Each call checks what the client checks
without the broker (a producer without ``transactional_id`` raises ``IllegalOperation``)
and is recorded as ``Kind.KAFKA_TRANSACTION``; ``producer.transaction()`` goes through
them. The producer's id is fetched by ``start()``, so there is no init to skip.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from shadowguard._kafka_clients import record_transaction
from shadowguard.contract import PROCESS, mark_wrapped, scope_now

__all__ = ["TRANSACTION_METHODS", "transaction_hook"]

TRANSACTION_METHODS = (
    "begin_transaction",
    "commit_transaction",
    "abort_transaction",
    "send_offsets_to_transaction",
)


def transaction_hook(
    name: str, original: Callable[..., Any]
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """The coroutine method ``name``: the client's own for a primary caller, recorded in shadow."""

    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await original(self, *args, **kwargs)
        manager = self._txn_manager
        transactional_id = manager.transactional_id if manager is not None else None
        try:
            self._ensure_transactional()
        except Exception as exc:
            record_transaction(name, None, error=exc)
            raise
        record_transaction(name, transactional_id)
        return None

    method.__name__ = method.__qualname__ = name
    mark_wrapped(method, original)
    return method
