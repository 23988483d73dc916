"""``KafkaProducer`` transactions in shadow: recorded no-ops, so the primary's are untouched.

A shadow request on a shared transactional producer would otherwise commit or abort the
primary's open transaction, add the primary group's offsets to it, or (``init_transactions``
with the same ``transactional_id``) fence the primary's producer. Each call checks what the
client checks without the broker (a producer without ``transactional_id`` raises
``IllegalStateError``) and is recorded as ``Kind.KAFKA_TRANSACTION``.

An application that initialises lazily remembers "initialised" after a shadow call too, so
a skipped ``init_transactions()`` is owed to the primary: the producer's next primary
transaction call runs the real one first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kafka.errors import IllegalStateError

from shadowguard._kafka_clients import TRANSACTION_METHODS, record_transaction
from shadowguard.contract import PROCESS, mark_wrapped, scope_now

__all__ = ["TRANSACTION_METHODS", "transaction_hook"]

_OWED = "_shadowguard_init_owed"
_init_lock = threading.Lock()


def transaction_hook(
    name: str, original: Callable[..., Any], init: Callable[..., Any]
) -> Callable[..., Any]:
    """The method ``name``; ``init`` is the client's own ``init_transactions``."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            if getattr(self, _OWED, False):
                _pay(self, init)
            return original(self, *args, **kwargs)
        return _skip(self, name)

    method.__name__ = method.__qualname__ = name
    mark_wrapped(method, original)
    return method


def _pay(producer: Any, init: Callable[..., Any]) -> None:
    with _init_lock:
        if getattr(producer, _OWED, False):
            init(producer)  # raises as the primary's own init would; owed until it succeeds
            setattr(producer, _OWED, False)


def _skip(producer: Any, name: str) -> None:
    manager = producer._transaction_manager
    transactional = manager is not None and manager.is_transactional()
    transactional_id = manager.transactional_id if transactional else None
    if not transactional:
        # Idempotent producers have a manager too; only a transactional_id makes one transactional.
        exc = IllegalStateError(f"Cannot call {name} without setting a transactional_id.")
        record_transaction(name, None, error=exc)
        raise exc
    if name == "init_transactions" and producer._init_transactions_result is None:
        setattr(producer, _OWED, True)
    record_transaction(name, transactional_id)
